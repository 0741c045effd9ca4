//! TODO(customers domain helper)
