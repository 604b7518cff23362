//! `kubectl-mesh_why`: explains why Istio traffic for a service is not landing where expected.
//! A thin shell over the `mesh_why` library: parse arguments, gather, analyze, render, exit.

use clap::Parser;
use mesh_why::{cli, complete, diagnose, error, gather, mcp, question, render, snapshot, trace};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

// A big mesh's question decodes hundreds of MB on every core into many small objects. The
// release binaries link musl, whose allocator made a 5,000-service question take twice as long
// (tools/bench); against glibc's, jemalloc held 15 to 20% less. One arena held least on two
// cores; dirty pages kept 300 ms and none kept lazily give memory back without the cost in
// speed of giving it back at once.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (jemalloc's own `malloc_conf`, under the
/// prefix tikv-jemalloc-sys gives its symbols): a C string's address, as jemalloc reads it.
#[cfg(not(target_env = "msvc"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: Option<&std::ffi::c_char> = Some(unsafe { &*c"narenas:1,dirty_decay_ms:300,muzzy_decay_ms:0".as_ptr() });

fn main() -> ExitCode {
    // kubectl completes a plugin's arguments by running `kubectl_complete-mesh_why`, a link to
    // this binary.
    let mut args = std::env::args();
    if args.next().is_some_and(|arg0| std::path::Path::new(&arg0).file_stem().is_some_and(|s| s == complete::PLUGIN_COMPLETER)) {
        let _ = std::io::stdout().write_all(complete::complete(&args.collect::<Vec<_>>()).as_bytes());
        return ExitCode::SUCCESS;
    }
    let cli = cli::Cli::parse();
    if let Some(cli::Command::Completion { shell }) = &cli.command {
        let _ = std::io::stdout().write_all(&complete::script(*shell));
        return ExitCode::SUCCESS;
    }
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            // Errors quote file names, fields and API answers: cleaned as output is.
            eprintln!("{}", render::clean(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

fn run(cli: &cli::Cli) -> error::Result<ExitCode> {
    if let Some(cli::Command::Trace(args)) = &cli.command {
        return trace(cli, args);
    }
    if let Some(path) = &cli.snapshot {
        // The process ends right after: freeing a big mesh's objects one by one took a tenth
        // of an `--all` run, so the snapshot is left to the exit.
        if let Some(scope) = cli.mesh_scope("default") {
            let snapshot = std::mem::ManuallyDrop::new(gather::files::read_snapshot(path)?);
            return Ok(print(cli, &diagnose::analyze_mesh(&snapshot, scope.as_deref())?));
        }
        let question = cli.question("default")?;
        let snapshot = std::mem::ManuallyDrop::new(gather::files::read_snapshot_for(path, &question)?);
        return report(cli, &snapshot, &question);
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| error::Error::new(format!("cannot start the async runtime: {e}")))?;
    if let Some(cli::Command::Mcp) = &cli.command {
        runtime.block_on(mcp::serve())?;
        return Ok(ExitCode::SUCCESS);
    }
    let result = runtime.block_on(live(cli));
    // A credential plugin abandoned on Ctrl-C or --timeout has been stopped; its blocking
    // thread is not waited for any longer than that.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// `trace`: one request from one caller, on a snapshot or live (reading what the service
/// question reads: the objects and the caller's proxy).
fn trace(cli: &cli::Cli, args: &cli::TraceArgs) -> error::Result<ExitCode> {
    let from = cli
        .from
        .as_deref()
        .ok_or_else(|| error::Error::new("trace needs --from: the calling pod").help("for example: --from productpage-v1-6b7f9d8c7-ccccc.default"))?;
    let snapshot = match &args.snapshot {
        Some(path) => gather::files::read_snapshot(path)?,
        None => {
            let service = trace::report::called_service(args)?.ok_or_else(|| {
                error::Error::new("live trace needs the service called, to know which objects and proxies to read")
                    .help("name it (kubectl mesh-why trace reviews --from productpage-v1-xxx --port 9080), or pass --host reviews.NAMESPACE or a --log line")
            })?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| error::Error::new(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(async {
                let (connect, options) = live_options(&cli.cluster, false);
                let cluster = gather::live::kube::connect(&connect).await?;
                let question = cli.question_about(&service, &cluster.default_namespace)?;
                gather::live::gather(&cluster, &question, &options).await?.into_snapshot()
            })?
        }
    };
    let namespace = cli.namespace.clone().unwrap_or_else(|| "default".into());
    let report = match &args.log {
        Some(line) => trace::log::explain(&snapshot, from, &namespace, line)?,
        None => {
            let request = trace::report::build_request(&snapshot.objects, args, cli.port, &namespace)?;
            trace::report::trace(&snapshot, from, &namespace, request)?
        }
    };
    let _ = std::io::stdout().write_all(trace::report::render(&report, args.output).as_bytes());
    Ok(if report.findings.iter().any(|f| f.severity == diagnose::Severity::Error) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// What a live reading produced: for one service, or for `--all` in a namespace (`None`: all).
enum Reading {
    Service(question::Question, gather::live::Capture),
    Mesh(Option<String>, gather::live::Capture),
}

/// How to connect and read, from the cluster flags. The deadline starts now, before the client
/// is built: a credential plugin runs then. `destinations`: read the called service's proxies too
/// (a trace walks only the caller's Envoy).
fn live_options(args: &cli::ClusterArgs, destinations: bool) -> (gather::live::kube::ConnectOptions, gather::live::LiveOptions) {
    let deadline = gather::live::Deadline::after(args.timeout);
    let connect = gather::live::kube::ConnectOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        request_timeout: args.request_timeout,
        deadline,
    };
    (connect, gather::live::LiveOptions { max_proxies: args.max_proxies as usize, deadline, destinations })
}

/// Live mode and `capture`: read the cluster, then analyze or write. Ctrl-C stops at once;
/// nothing has been written to disk before the reading is complete.
async fn live(cli: &cli::Cli) -> error::Result<ExitCode> {
    let (connect, options) = live_options(&cli.cluster, true);
    let reading = async {
        let cluster = gather::live::kube::connect(&connect).await?;
        if let Some(scope) = cli.mesh_scope(&cluster.default_namespace) {
            let capture = gather::live::gather_mesh(&cluster, scope.as_deref(), &options).await?;
            return Ok::<_, error::Error>(Reading::Mesh(scope, capture));
        }
        let question = cli.question(&cluster.default_namespace)?;
        let capture = gather::live::gather(&cluster, &question, &options).await?;
        Ok(Reading::Service(question, capture))
    };
    let read = tokio::select! {
        read = reading => read?,
        _ = tokio::signal::ctrl_c() => return Err(error::Error::new("interrupted; nothing was written")),
    };
    let Some(cli::Command::Capture { dir, .. }) = &cli.command else {
        return match read {
            Reading::Service(question, capture) => report(cli, &capture.into_snapshot()?, &question),
            Reading::Mesh(scope, capture) => Ok(print(cli, &diagnose::analyze_mesh(&capture.into_snapshot()?, scope.as_deref())?)),
        };
    };
    let (capture, target, rerun) = match read {
        Reading::Service(question, capture) => {
            let port = question.port.map(|p| format!(":{p}")).unwrap_or_default();
            let target = format!("{}.{}{port}", question.service, question.namespace);
            (capture, target.clone(), target)
        }
        Reading::Mesh(scope, capture) => {
            let target = snapshot::mesh_target(scope.as_deref());
            (capture, target, scope.map(|ns| format!("--all -n {ns}")).unwrap_or_else(|| "--all -A".into()))
        }
    };
    gather::write::write_snapshot(&capture, &capture.manifest(target), dir)?;
    let objects: usize = capture.lists.values().map(Vec::len).sum();
    println!(
        "wrote {}: {objects} objects, {} proxies, {} gaps (see {})\nanalyze it with: kubectl mesh-why {rerun} --snapshot {}",
        dir.display(),
        capture.proxies.len(),
        capture.gaps.len(),
        snapshot::MANIFEST_FILE,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Analyzes `snapshot` and prints the report; the exit code says whether an error was found.
fn report(cli: &cli::Cli, snapshot: &snapshot::Snapshot, question: &question::Question) -> error::Result<ExitCode> {
    Ok(print(cli, &diagnose::analyze(snapshot, question)?))
}

/// Prints a report in the chosen format; the exit code says whether an error was found.
fn print(cli: &cli::Cli, report: &diagnose::Report) -> ExitCode {
    let color = cli.output == render::Format::Table && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let text = render::render(report, cli.output, color);
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
    if report.has_errors() { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
