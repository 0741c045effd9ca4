use clap::Parser as _;
use tenancy::{
    commands,
    config::{Cli, Command},
    startup, telemetry,
};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.common.log_format);
    let result = match &cli.command {
        Command::Serve(serve) => match tokio::net::TcpListener::bind(serve.listen).await {
            Ok(listener) => {
                startup::run(
                    cli.common.database(),
                    (**serve).clone(),
                    listener,
                    startup::shutdown_signal(),
                )
                .await
            }
            Err(error) => Err(format!("cannot listen on {}: {error}", serve.listen).into()),
        },
        Command::Migrate => commands::migrate(&cli.common).await,
        Command::Keys(command) => commands::keys(&cli.common, command).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "tenancy failed");
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
