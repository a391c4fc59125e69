//! The `feedwire` command line: `run`, `build`, `check`, `status`, `redeliver`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use feedwire::config::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "feedwire",
    version,
    about = "A folder of news articles in, live RSS / Atom / JSON feeds out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: watch the articles folder, keep feeds current, serve HTTP.
    Run {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Ingest every article once, update the catalog and write all feeds.
    Build {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Parse article files and show what was understood, without publishing.
    Check {
        /// One JSON object per file per line.
        #[arg(long)]
        json: bool,
        /// Read dates in this config's time zone and limits (optional).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the catalog: articles, feeds, rejected files, delivery backlog.
    Status {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Move a partner's dead-letter deliveries back to pending (a running
    /// daemon sends them within a second).
    Redeliver {
        /// The partner's `name` from the config.
        partner: String,
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Build { config } => {
            let cfg = Config::load(&config)?;
            init_logging(&cfg.log.level);
            build(cfg)
        }
        Command::Check {
            json,
            config,
            files,
        } => check(json, config.as_deref(), &files),
        Command::Status { config } => {
            let cfg = Config::load(&config)?;
            print!("{}", feedwire::status::render(&cfg)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Redeliver { partner, config } => {
            let cfg = Config::load(&config)?;
            if !cfg.partners.iter().any(|p| p.name == partner) {
                anyhow::bail!("no partner named `{partner}` in {}", config.display());
            }
            let catalog =
                feedwire::catalog::Catalog::open_existing(&cfg.catalog_path(), cfg.time_zone()?)?;
            let n = feedwire::syndicate::redeliver(&catalog, &partner)?;
            println!("{n} dead letter(s) of `{partner}` moved back to pending");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => {
            let cfg = Config::load(&config)?;
            init_logging(&cfg.log.level);
            feedwire::daemon::run(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn build(cfg: Config) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let articles_dir = cfg.paths.articles.clone();
    let mut pipeline = feedwire::pipeline::Pipeline::open(cfg, None)?;
    let (outcome, report) = pipeline.build().with_context(|| "the build failed")?;
    let rejections = pipeline.catalog().rejections()?;
    for r in &rejections {
        eprintln!(
            "error: {}: {}",
            articles_dir.join(&r.path).display(),
            r.reason
        );
    }
    for (path, reason) in &report.refused {
        eprintln!("error: feed {path} not published: {reason}");
    }
    println!(
        "{} articles in the catalog ({} new or changed, {} unchanged, {} removed); {} files rejected; {} feed documents written, {} unchanged, {} refused; {:.2}s",
        pipeline.catalog().article_count()?,
        outcome.accepted.len(),
        outcome.unchanged,
        outcome.removed.len(),
        rejections.len(),
        report.written.len(),
        report.unchanged,
        report.refused.len(),
        started.elapsed().as_secs_f64()
    );
    let produced = report.written.len() + report.unchanged;
    Ok(if produced == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn check(json: bool, config: Option<&Path>, files: &[PathBuf]) -> Result<ExitCode> {
    let cfg = match config {
        Some(path) => Config::load(path)?,
        None if Path::new("config.toml").exists() => Config::load(Path::new("config.toml"))?,
        None => Config::from_toml("", Path::new("config.toml"))?,
    };
    let opts = feedwire::ingest::IngestOptions {
        time_zone: cfg.time_zone()?,
        max_bytes: cfg.ingest.max_bytes,
        now: chrono::Utc::now(),
        limits: cfg.ingest.limits(),
    };
    let mut failed = false;
    for file in files {
        let (report, article) = feedwire::check::check_file(file, &opts);
        failed |= article.is_none();
        if json {
            println!("{report}");
        } else {
            print!("{}", feedwire::check::describe(&report));
            if article.is_none() {
                println!();
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
