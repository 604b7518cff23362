//! Credentials in live mode: what may be said when a kubeconfig or a credential plugin fails,
//! and stopping a plugin we stop waiting for.
//!
//! kube's errors carry credential material: a YAML syntax error quotes the lines around it (a
//! token), and a failed exec plugin's error holds its command line, environment and output.
//! None of that text is ever shown: failures are rephrased from what is safe to name (the
//! file, the line, the user entry, the plugin's command name and exit code).

use crate::error::Error;
use kube::client::AuthError;
use kube::config::{Kubeconfig, KubeconfigError};
use std::path::Path;

/// The kubeconfig user entry a context authenticates as, as far as it may be named.
#[derive(Debug, Clone, Default)]
pub struct User {
    /// The `users[].name`.
    pub name: String,
    /// The exec plugin's command, without its directory (never its arguments).
    pub plugin: Option<String>,
    /// The plugin's `installHint`, shown when the command is not found.
    pub install_hint: Option<String>,
}

impl User {
    /// The user entry that `context` of `file` uses.
    pub fn of(file: &Kubeconfig, context: &str) -> User {
        let name = file.contexts.iter().find(|c| c.name == context).and_then(|c| c.context.as_ref()?.user.clone()).unwrap_or_default();
        let exec = file.auth_infos.iter().find(|u| u.name == name).and_then(|u| u.auth_info.as_ref()?.exec.as_ref());
        let plugin = exec.and_then(|e| e.command.as_deref()).map(|c| Path::new(c).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
        User { name, plugin, install_hint: exec.and_then(|e| e.install_hint.clone()) }
    }

    /// `user \`NAME\``, or `the kubeconfig's user` when unknown.
    fn display(&self) -> String {
        if self.name.is_empty() { "the kubeconfig's user".into() } else { format!("user `{}`", crate::render::clean(&self.name)) }
    }

    /// `the credential plugin \`CMD\` of user \`NAME\``.
    pub fn plugin_display(&self) -> String {
        match &self.plugin {
            Some(cmd) => format!("the credential plugin `{}` of {}", crate::render::clean(cmd), self.display()),
            None => format!("the credentials of {}", self.display()),
        }
    }
}

/// A kubeconfig file that cannot be read, said without quoting it.
pub fn unreadable_kubeconfig(path: &Path, error: &KubeconfigError) -> Error {
    let shown = crate::render::clean(&path.display().to_string());
    let help = "fix the file (`kubectl config view` shows what kubectl makes of it), or point --kubeconfig / KUBECONFIG elsewhere";
    match error {
        KubeconfigError::ReadConfig(io, _) => Error::new(format!("cannot read the kubeconfig: {}", io.kind())).at(shown).help(help),
        KubeconfigError::Parse(yaml) => {
            let place = yaml.location().map(|l| (l.line(), l.column()));
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let entry = place.and_then(|(line, _)| users_entry(&text, line as usize)).map(|u| format!(", in users entry `{}`", crate::render::clean(&u)));
            let at = match place {
                Some((line, column)) => format!("{shown}:{line}:{column}"),
                None => shown,
            };
            // The parser's message can quote a value (a token); only its position is shown.
            Error::new(format!("the kubeconfig is not valid YAML{}", entry.unwrap_or_default())).at(at).help(help)
        }
        other => Error::new(format!("cannot use the kubeconfig: {}", crate::render::clean(&other.to_string()))).at(shown).help(help),
    }
}

/// The `users:` entry whose block holds 1-based `line` of a kubeconfig, by its `name:`.
fn users_entry(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(line).collect();
    let start = lines.iter().rposition(|l| l.starts_with("users:"))?;
    // A later top-level key ends the users block.
    if lines[start + 1..].iter().any(|l| !l.is_empty() && !l.starts_with([' ', '-', '#'])) {
        return None;
    }
    let entry = lines[start + 1..].iter().rposition(|l| l.starts_with('-')).map(|i| start + 1 + i)?;
    lines[entry..].iter().find_map(|l| {
        let rest = l.trim_start_matches(['-', ' ']);
        let value = rest.strip_prefix("name:")?.trim().trim_matches(['"', '\'']);
        // Only the entry's own `name:` (at its first indentation), not a nested one.
        (l.len() - rest.len() <= 2).then(|| value.to_string())
    })
}

/// An auth failure in `error`'s source chain, if any.
pub fn auth_failure<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a AuthError> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(auth) = e.downcast_ref::<AuthError>() {
            return Some(auth);
        }
        if let Some(kube::Error::Auth(auth)) = e.downcast_ref::<kube::Error>() {
            return Some(auth);
        }
        next = e.source();
    }
    None
}

/// An auth failure in plain words: which user and plugin, and how it failed, never what the
/// plugin printed or was given.
pub fn describe_auth(error: &AuthError, user: &User) -> String {
    let who = user.plugin_display();
    match error {
        AuthError::AuthExecStart(io) if io.kind() == std::io::ErrorKind::NotFound => {
            let hint = user.install_hint.as_deref().map(|h| format!(" ({})", crate::render::clean(h.trim()))).unwrap_or_default();
            format!("{who} was not found{hint}")
        }
        AuthError::AuthExecStart(io) => format!("{who} could not be started: {}", io.kind()),
        AuthError::AuthExecRun { out, .. } => match out.status.code() {
            Some(code) => format!("{who} failed with exit code {code}"),
            None => format!("{who} was stopped by a signal"),
        },
        AuthError::AuthExecParse(_) => format!("{who} printed something that is not an ExecCredential"),
        AuthError::ExecPluginFailed => format!("{who} answered without a status"),
        AuthError::MissingCommand => format!("{who}: the exec entry has no command"),
        AuthError::InvalidBearerToken(_) => format!("the token of {} is not a valid HTTP header value", user.display()),
        AuthError::InvalidBasicAuth(_) => format!("the username/password of {} is not a valid HTTP header value", user.display()),
        AuthError::ReadTokenFile(io, _) => format!("the token file of {} cannot be read: {}", user.display(), io.kind()),
        _ => format!("{who} could not provide credentials"),
    }
}

/// The error for an auth failure while connecting.
pub fn auth_error(error: &AuthError, user: &User) -> Error {
    Error::new(format!("cannot get credentials: {}", describe_auth(error, user)))
        .help("run the same command with kubectl (`kubectl version`) to see the plugin's own message, then fix the login")
}

/// Stops credential plugins still running when we stop waiting for them (on `--timeout` or
/// Ctrl-C), so none is left behind: kube starts them as our child processes and waits on a
/// blocking thread. Dropping the guard without [`PluginGuard::done`] stops them.
pub struct PluginGuard {
    armed: bool,
}

impl PluginGuard {
    /// Armed: dropping it stops every plugin process.
    pub fn new() -> PluginGuard {
        PluginGuard { armed: true }
    }

    /// The plugin finished by itself; nothing to stop.
    pub fn done(mut self) {
        self.armed = false;
    }
}

impl Default for PluginGuard {
    fn default() -> Self {
        PluginGuard::new()
    }
}

impl Drop for PluginGuard {
    fn drop(&mut self) {
        if self.armed {
            stop_plugins();
        }
    }
}

/// Stops our child processes and theirs. mesh-why starts no process but kube's credential
/// plugins, so every child is one.
pub fn stop_plugins() {
    #[cfg(unix)]
    {
        let pids = descendants(std::process::id() as libc::pid_t);
        signal(&pids, libc::SIGTERM);
        // A plugin that ignores SIGTERM (or is slow to exit) gets a short grace, then SIGKILL.
        let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
        while std::time::Instant::now() < until && pids.iter().any(|&p| alive(p)) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        signal(&pids, libc::SIGKILL);
    }
}

#[cfg(unix)]
fn signal(pids: &[libc::pid_t], sig: libc::c_int) {
    for &pid in pids {
        // SAFETY: kill(2) with a pid we found as our descendant; no memory is shared.
        unsafe { libc::kill(pid, sig) };
    }
}

#[cfg(unix)]
fn alive(pid: libc::pid_t) -> bool {
    // Our exited children stay zombies until kube reaps them: a zombie is not alive.
    #[cfg(target_os = "linux")]
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        return stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|state| state != "Z");
    }
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Every process below `root`, children before grandchildren.
#[cfg(unix)]
fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for child in children(parent) {
            if !out.contains(&child) {
                out.push(child);
                queue.push(child);
            }
        }
    }
    out
}

#[cfg(target_os = "linux")]
fn children(parent: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<libc::pid_t>().ok()) == Some(parent)
        })
        .collect()
}

#[cfg(target_os = "macos")]
fn children(parent: libc::pid_t) -> Vec<libc::pid_t> {
    let mut buffer = vec![0 as libc::pid_t; 256];
    let size = (buffer.len() * std::mem::size_of::<libc::pid_t>()) as libc::c_int;
    // SAFETY: the buffer is valid for `size` bytes; unused entries stay 0.
    unsafe { libc::proc_listchildpids(parent, buffer.as_mut_ptr().cast(), size) };
    buffer.into_iter().filter(|&p| p > 0).collect()
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
fn children(_parent: libc::pid_t) -> Vec<libc::pid_t> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_names_the_users_entry() {
        let text = "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: S3CR3T\n   client-key-data: x\n";
        assert_eq!(users_entry(text, 7).as_deref(), Some("u"));
        assert_eq!(users_entry("users:\n- name: a\n  user: {}\ncontexts:\n- name: c\n", 5), None);
        assert_eq!(users_entry("clusters: []\n", 1), None);
    }

    #[test]
    fn a_kubeconfig_syntax_error_never_quotes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kc");
        std::fs::write(&path, "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: S3CR3T-BEARER\n   client-key-data: x\n").unwrap();
        let error = Kubeconfig::read_from(&path).unwrap_err();
        let shown = unreadable_kubeconfig(&path, &error).to_string();
        assert!(!shown.contains("S3CR3T"), "{shown}");
        assert!(shown.contains("not valid YAML, in users entry `u`") && shown.contains("kc:7:"), "{shown}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn children_are_found_and_stopped() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as libc::pid_t;
        assert!(descendants(std::process::id() as libc::pid_t).contains(&pid));
        signal(&[pid], libc::SIGKILL);
        assert!(!child.wait().unwrap().success());
    }
}
