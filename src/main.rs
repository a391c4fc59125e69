//! The `feedwire` command line: `run`, `build`, `check`, `status`, `redeliver`,
//! `apply-removals`, `migrate-catalog`.

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
    /// Withhold an article until a time (a running daemon acts within a
    /// second); an offset-less time is read in `site.time_zone`.
    Embargo {
        /// The article id (a wire file's name without `.txt`, or front-matter `id`).
        id: String,
        /// RFC 3339 (`2026-12-24T08:00:00+07:00`) or local (`2026-12-24 08:00`).
        until: String,
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Kill an article: it leaves every feed and page (410 Gone), partners
    /// get a deletion notice with the reason, and it is not published again
    /// until `feedwire reinstate`.
    Kill {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Add a correction note: shown on the article page and at the end of the
    /// entry; `updated` moves and partners receive the new version.
    Correct {
        id: String,
        #[arg(long)]
        note: String,
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Undo a kill (or an editor's embargo): the article is published again
    /// from its file, as the file says.
    Reinstate {
        id: String,
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Approve removals held back by `watch.max_removals` (a running daemon
    /// applies them within a second; otherwise the next `run` or `build`).
    ApplyRemovals {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Copy the SQLite catalog (under `paths.state`) into an empty
    /// PostgreSQL database, then point `[catalog] url` at it. Stop the daemon
    /// first: what it writes afterwards is not copied.
    MigrateCatalog {
        /// postgres://user:password@host:port/db, or env:NAME to read it
        /// from the environment.
        #[arg(long)]
        to: String,
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
            init_logging(&cfg.log);
            build(cfg)
        }
        Command::Embargo { id, until, config } => {
            let cfg = Config::load(&config)?;
            let opts = feedwire::ingest::IngestOptions {
                time_zone: cfg.time_zone()?,
                max_bytes: cfg.ingest.max_bytes,
                now: chrono::Utc::now(),
                limits: cfg.ingest.limits(),
            };
            let until = feedwire::ingest::embargo_time(&until, &opts)?;
            editor_command(
                &cfg,
                &id,
                feedwire::catalog::EditorCommand::Embargo {
                    until: until.with_timezone(&chrono::Utc),
                },
                true,
            )
        }
        Command::Kill { id, reason, config } => {
            let cfg = Config::load(&config)?;
            editor_command(
                &cfg,
                &id,
                feedwire::catalog::EditorCommand::Kill { reason },
                false,
            )
        }
        Command::Correct { id, note, config } => {
            let cfg = Config::load(&config)?;
            if note.trim().is_empty() {
                anyhow::bail!("--note must say what was corrected");
            }
            editor_command(
                &cfg,
                &id,
                feedwire::catalog::EditorCommand::Correct { note },
                false,
            )
        }
        Command::Reinstate { id, config } => {
            let cfg = Config::load(&config)?;
            editor_command(
                &cfg,
                &id,
                feedwire::catalog::EditorCommand::Reinstate,
                false,
            )
        }
        Command::ApplyRemovals { config } => {
            let cfg = Config::load(&config)?;
            let catalog =
                feedwire::catalog::Catalog::open_existing(&cfg.catalog_path(), cfg.time_zone()?)?;
            let held = catalog.held_removals()?;
            let n = catalog.approve_held_removals()?;
            if held.is_empty() {
                println!("no removals are held");
            } else {
                println!(
                    "{n} held removal(s) approved; a running feedwire applies them within a second (otherwise the next `feedwire run` or `build` does). Files that are back stay published."
                );
            }
            Ok(ExitCode::SUCCESS)
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
        Command::MigrateCatalog { to, config } => {
            let cfg = Config::load(&config)?;
            let url = feedwire::config::PostgresUrl::from_setting(&to, "--to", &cfg.catalog)?;
            let from = cfg.sqlite_catalog_path();
            let report = feedwire::catalog::Catalog::copy_sqlite_to_postgres(&from, &url)?;
            println!("copied {} into PostgreSQL {url}:", from.display());
            for (table, rows) in &report.tables {
                println!("  {table:<24} {rows}");
            }
            println!(
                "now set `[catalog] url` in {} to this database (the SQLite file is left as it was) and start feedwire",
                config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => {
            let cfg = Config::load(&config)?;
            init_logging(&cfg.log);
            feedwire::app::run(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Logs go to stderr: coloured only when that is a terminal (and `NO_COLOR`
/// is unset), so files and journald get plain text; `log.format = "json"`
/// gives one JSON object per line for log shippers.
fn init_logging(log: &feedwire::config::Log) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        feedwire::config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        feedwire::config::LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).try_init()
        }
    };
}

/// Record an editor's command in the catalog: its override holds at once,
/// and a running daemon acts on it within a second (otherwise the next
/// `run` or `build`). `unknown_ok`: an embargo may be set before the
/// article's file arrives.
fn editor_command(
    cfg: &Config,
    id: &str,
    command: feedwire::catalog::EditorCommand,
    unknown_ok: bool,
) -> Result<ExitCode> {
    use feedwire::catalog::{ArticleState, Catalog};
    let catalog = Catalog::open_existing(&cfg.catalog_path(), cfg.time_zone()?)?;
    let state = catalog.article_state(id)?;
    if matches!(state, ArticleState::Unknown) && !unknown_ok {
        anyhow::bail!(
            "no article with id `{id}` in the catalog (the id is the wire file's name without .txt, or a Markdown file's front-matter `id`); `feedwire status` lists what is there"
        );
    }
    let who = operator();
    let name = command.name();
    catalog.record_command(id, &command, &who, chrono::Utc::now())?;
    println!(
        "{name} `{id}` recorded (by {who}); a running feedwire applies it within a second, otherwise the next `feedwire run` or `build` does"
    );
    Ok(ExitCode::SUCCESS)
}

/// Who runs a command, for the log: the login behind `sudo`, else the user
/// (from the environment, else the account of the process's uid).
fn operator() -> String {
    if let Some(name) = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    {
        return name;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

fn build(cfg: Config) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let articles_dir = cfg.paths.articles.clone();
    let mut pipeline = feedwire::pipeline::Pipeline::open(cfg, None)?;
    let (outcome, report) = pipeline.build().with_context(|| "the build failed")?;
    if outcome.folder_missing {
        anyhow::bail!(
            "paths.articles: the articles folder {} does not exist; create it, or correct paths.articles in {}",
            articles_dir.display(),
            pipeline.cfg.source.display()
        );
    }
    let held = pipeline.catalog().held_removals()?;
    if !held.is_empty() {
        eprintln!(
            "warning: {} removal(s) held (more than watch.max_removals at once); the articles stay published. Restore the files, or run `feedwire apply-removals` and build again (`feedwire status` lists them)",
            held.len()
        );
    }
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
