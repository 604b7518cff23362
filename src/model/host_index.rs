//! Objects by the hosts they name, so a question about one host looks only at the objects that
//! could claim it: scanning every VirtualService or DestinationRule per service made `--all`
//! grow with the square of the mesh.

use std::collections::{BTreeSet, HashMap};

/// Positions of objects in their list, by exact host (lowercase), plus those with a wildcard host.
#[derive(Debug, Default)]
pub struct HostIndex {
    exact: HashMap<String, Vec<usize>>,
    wildcard: Vec<usize>,
}

impl HostIndex {
    /// Indexes each object's resolved hosts, in list order.
    pub fn build<'h, I, H>(objects: I) -> HostIndex
    where
        I: IntoIterator<Item = H>,
        H: IntoIterator<Item = &'h str>,
    {
        let mut index = HostIndex::default();
        for (i, hosts) in objects.into_iter().enumerate() {
            let (wildcard, exact): (Vec<&str>, Vec<&str>) = hosts.into_iter().partition(|h| h.starts_with('*'));
            if !wildcard.is_empty() {
                index.wildcard.push(i);
            }
            let exact: BTreeSet<String> = exact.into_iter().map(str::to_ascii_lowercase).collect();
            for host in exact {
                index.exact.entry(host).or_default().push(i);
            }
        }
        index
    }

    /// The positions of the objects that may claim `fqdn` (an exact host equal to it, or any
    /// wildcard host: the caller checks those), in list order.
    pub fn candidates(&self, fqdn: &str) -> Vec<usize> {
        let mut out: Vec<usize> = self.exact.get(&fqdn.to_ascii_lowercase()).into_iter().flatten().chain(&self.wildcard).copied().collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_exact_claims_and_every_wildcard_in_list_order() {
        let lists: Vec<Vec<&str>> =
            vec![vec!["*.ns.svc.cluster.local"], vec!["a.ns.svc.cluster.local"], vec!["b.ns.svc.cluster.local", "A.ns.svc.cluster.local"], vec!["*"]];
        let index = HostIndex::build(lists.iter().map(|l| l.iter().copied()));
        assert_eq!(index.candidates("a.ns.svc.cluster.local"), vec![0, 1, 2, 3]);
        assert_eq!(index.candidates("b.ns.svc.cluster.local"), vec![0, 2, 3]);
        assert_eq!(index.candidates("c.other"), vec![0, 3]);
    }
}
