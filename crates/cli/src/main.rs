//! The `microcommerce` binary: parse the command line, set up logging, run the command.

mod cli;
mod logging;
mod telemetry;

use clap::Parser;
use cli::{Cli, Command};
use microcommerce_service::app::{App, prepare_database};
use microcommerce_service::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let quiet_by_default = matches!(cli.command, Command::Bench(_));
    let default = if quiet_by_default { "warn" } else { "info" };
    let rust_log = std::env::var("RUST_LOG").ok();
    let traces = match telemetry::from_env() {
        Ok(traces) => traces,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match logging::choose_filter(cli.log_level.as_deref(), rust_log.as_deref(), default) {
        Ok(filter) => logging::init(filter, cli.log_json, traces.as_ref()),
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::from(2);
        }
    }
    let ran = run(cli.command, traces.is_some()).await;
    if let Some(traces) = traces {
        telemetry::flush_and_stop(traces).await;
    }
    match ran {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs `command`; `traces` says whether spans are exported (see `telemetry.rs`).
async fn run(command: Command, traces: bool) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Serve(args) => {
            let (mut config, generated_token) = args.into_config();
            config.traces = traces;
            let app = App::build(config).await?;
            // Only once the port is held and the database is ready: a start that fails prints
            // no token that never worked.
            if let Some(token) = generated_token {
                println!("admin token (set MICROCOMMERCE_ADMIN_TOKEN to choose one): {token}");
            }
            println!("listening on http://{}", app.local_addr());
            app.run(shutdown_signal()).await?;
        }
        Command::Migrate(args) => {
            let config = Config {
                database_url: args.database_url,
                synchronous: args.synchronous,
                pin_writer: args.pin_writer,
                db_pool_size: args.db_pool_size,
                statement_timeout: args.statement_timeout,
                connect_timeout: args.connect_timeout,
                ..Config::default()
            };
            prepare_database(&config).await?.close().await;
            println!("database is up to date");
        }
        Command::Bench(args) => {
            let json = args.json;
            let options = bench::BenchOptions {
                traces,
                ..args.into_options()
            };
            let report = bench::run(&options).await?;
            print!("{}", report.table());
            if json {
                println!("{}", report.json());
            }
            if !report.invariants_ok() {
                return Err("the invariants did not hold".into());
            }
        }
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM, which starts a graceful shutdown.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested");
}
