//! Foundation tests: API keys, health, reflection, shutdown, events, TLS.
