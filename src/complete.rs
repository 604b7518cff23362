//! Shell completion: static scripts for `kubectl-mesh_why` (clap_complete), and kubectl's plugin
//! completion, where kubectl runs `kubectl_complete-mesh_why ARGS... WORD` and reads candidates,
//! one a line, then `:DIRECTIVE` (cobra's protocol). Namespaces, services and pods are listed
//! from the cluster (read-only, each list bounded by a short timeout); any failure offers nothing
//! rather than printing an error into the user's shell.

use crate::cli::Cli;
use crate::gather::live::kube::{ConnectOptions, connect};
use clap::CommandFactory;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, ListParams};
use std::path::PathBuf;
use std::time::Duration;

/// Name kubectl looks for on PATH to complete the plugin's arguments.
pub const PLUGIN_COMPLETER: &str = "kubectl_complete-mesh_why";

/// cobra's ShellCompDirectiveDefault: the shell may complete file names.
const FILES: u8 = 0;
/// cobra's ShellCompDirectiveNoFileComp: only the candidates given.
const NO_FILES: u8 = 4;

/// The longest a completion may wait on the cluster: a shell's TAB must not hang.
const LIST_TIMEOUT: Duration = Duration::from_secs(3);

/// The completion script for `shell`, for the `kubectl-mesh_why` binary.
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kubectl-mesh_why", &mut out);
    out
}

/// What the cluster is asked for.
#[derive(Debug, PartialEq, Eq)]
enum Listing {
    Namespaces,
    Services(Option<String>),
    Pods(Option<String>),
}

/// The words typed so far, read without a full parse (they are usually incomplete).
struct Typed {
    /// Each flag given, by its id, with its value (empty for a switch).
    flags: Vec<(String, String)>,
    /// Positional words (subcommand, service).
    positionals: Vec<String>,
}

impl Typed {
    fn read(words: &[String]) -> Typed {
        let command = Cli::command();
        let mut typed = Typed { flags: Vec::new(), positionals: Vec::new() };
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let Some(flag) = word.strip_prefix('-') else {
                typed.positionals.push(word.clone());
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            let Some(arg) = find_flag(&command, name) else { continue };
            let value = if arg.get_action().takes_values() { inline.or_else(|| words.next().cloned()).unwrap_or_default() } else { String::new() };
            typed.flags.push((arg.get_id().to_string(), value));
        }
        typed
    }

    fn flag(&self, id: &str) -> Option<String> {
        self.flags.iter().rev().find(|(k, _)| k == id).map(|(_, v)| v.clone())
    }
}

/// The argument `-x` / `--name` (a dash already stripped) names, on the command or a subcommand.
fn find_flag<'a>(command: &'a clap::Command, name: &str) -> Option<&'a clap::Arg> {
    let matches = |a: &&clap::Arg| match name.strip_prefix('-') {
        Some(long) => a.get_long() == Some(long),
        None => name.chars().count() == 1 && a.get_short() == name.chars().next(),
    };
    command.get_arguments().find(matches).or_else(|| command.get_subcommands().find_map(|s| s.get_arguments().find(matches)))
}

/// What to offer for `word`, given the words before it: fixed candidates, or a listing.
fn plan(before: &[String], word: &str) -> (Vec<String>, Option<Listing>, u8) {
    let command = Cli::command();
    let typed = Typed::read(before);
    let namespace = typed.flag("namespace");
    // The value of the flag just before `word`, if that flag takes one.
    let pending = before.last().and_then(|w| w.strip_prefix('-')).filter(|f| !f.contains('=')).and_then(|f| find_flag(&command, f));
    if let Some(arg) = pending.filter(|a| a.get_action().takes_values()) {
        return match arg.get_id().as_str() {
            "namespace" => (Vec::new(), Some(Listing::Namespaces), NO_FILES),
            "from" => (Vec::new(), Some(Listing::Pods(namespace)), NO_FILES),
            "snapshot" | "dir" | "kubeconfig" => (Vec::new(), None, FILES),
            _ => (arg.get_possible_values().iter().map(|v| v.get_name().to_string()).collect(), None, NO_FILES),
        };
    }
    if word.starts_with('-') {
        let sub = typed.positionals.first().and_then(|p| command.find_subcommand(p));
        let flags = command
            .get_arguments()
            .chain(sub.into_iter().flat_map(|s| s.get_arguments()))
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        return (flags, None, NO_FILES);
    }
    match typed.positionals.as_slice() {
        [] => {
            let subcommands = command.get_subcommands().filter(|s| !s.is_hide_set()).map(|s| s.get_name().to_string()).collect();
            (subcommands, (!typed.flags.iter().any(|(k, _)| k == "all")).then_some(Listing::Services(namespace)), NO_FILES)
        }
        [sub] => match command.find_subcommand(sub).and_then(|s| s.get_positionals().next()) {
            // `capture SERVICE`, and any subcommand that asks about a service the same way.
            Some(arg) if arg.get_id() == "service" => (Vec::new(), Some(Listing::Services(namespace)), NO_FILES),
            Some(arg) => (arg.get_possible_values().iter().filter(|v| !v.is_hide_set()).map(|v| v.get_name().to_string()).collect(), None, NO_FILES),
            None => (Vec::new(), None, NO_FILES),
        },
        _ => (Vec::new(), None, NO_FILES),
    }
}

/// Lists names from the cluster of the kubeconfig the typed flags choose.
async fn list(listing: &Listing, typed: &Typed) -> Vec<String> {
    let options = ConnectOptions {
        kubeconfig: typed.flag("kubeconfig").map(PathBuf::from),
        context: typed.flag("context"),
        request_timeout: LIST_TIMEOUT,
        deadline: crate::gather::live::Deadline::after(LIST_TIMEOUT),
    };
    let Ok(cluster) = connect(&options).await else { return Vec::new() };
    let namespace = |ns: &Option<String>| ns.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| cluster.default_namespace.clone());
    match listing {
        Listing::Namespaces => names(Api::<Namespace>::all(cluster.client.clone())).await,
        Listing::Services(ns) => names(Api::<Service>::namespaced(cluster.client.clone(), &namespace(ns))).await,
        Listing::Pods(ns) => names(Api::<Pod>::namespaced(cluster.client.clone(), &namespace(ns))).await,
    }
}

/// The names of the objects `api` lists (metadata only); none when the list fails.
async fn names<K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug>(api: Api<K>) -> Vec<String> {
    api.list_metadata(&ListParams::default()).await.map(|l| l.items.into_iter().filter_map(|o| o.metadata.name).collect()).unwrap_or_default()
}

/// Answers kubectl's plugin completion: `args` are the words typed after `kubectl mesh-why`, the
/// last one being the word to complete. Returns the text to print.
pub fn complete(args: &[String]) -> String {
    let (word, before) = match args.split_last() {
        Some((word, before)) => (word.as_str(), before),
        None => ("", args),
    };
    let (mut candidates, listing, directive) = plan(before, word);
    if let Some(listing) = listing {
        let typed = Typed::read(before);
        let listed = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
            .and_then(|runtime| runtime.block_on(async { tokio::time::timeout(LIST_TIMEOUT, list(&listing, &typed)).await.ok() }));
        candidates.extend(listed.unwrap_or_default());
    }
    let mut out: String = candidates.into_iter().filter(|c| c.starts_with(word)).map(|c| crate::render::clean(&c) + "\n").collect();
    out += &format!(":{directive}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn each_position_is_offered_what_fits_it() {
        assert_eq!(plan(&words("-n"), ""), (vec![], Some(Listing::Namespaces), NO_FILES));
        assert_eq!(plan(&words("reviews --namespace bookinfo --from"), ""), (vec![], Some(Listing::Pods(Some("bookinfo".into()))), NO_FILES));
        assert_eq!(plan(&words("-n=bookinfo"), "rev").1, Some(Listing::Services(Some("bookinfo".into()))));
        assert_eq!(plan(&words("reviews -o"), ""), (words("table markdown json"), None, NO_FILES));
        assert_eq!(plan(&words("reviews --snapshot"), ""), (vec![], None, FILES));
        assert_eq!(plan(&words("capture -n x"), "").1, Some(Listing::Services(Some("x".into()))));
        assert_eq!(plan(&words("trace -n x"), "").1, Some(Listing::Services(Some("x".into()))));
        assert_eq!(plan(&words("trace reviews --snapshot"), ""), (vec![], None, FILES));
        assert_eq!(plan(&words("completion"), "").0, words("bash elvish fish powershell zsh"));
        assert_eq!(plan(&words("reviews"), ""), (vec![], None, NO_FILES));
        assert!(plan(&[], "--").0.contains(&"--namespace".to_string()));
        assert!(plan(&words("capture"), "--").0.contains(&"--dir".to_string()));
        assert!(plan(&[], "").0.contains(&"capture".to_string()));
        assert_eq!(plan(&words("--all"), "").1, None);
    }

    #[test]
    fn without_a_cluster_completion_offers_only_what_it_knows() {
        let out = complete(&words("--kubeconfig /nonexistent/kubeconfig reviews -o j"));
        assert_eq!(out, "json\n:4\n");
    }
}
