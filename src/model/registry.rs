//! The service registry as istiod builds it: every hostname a Service or ServiceEntry defines,
//! with its ports and their protocols (port name prefix, `appProtocol`, sniffing).

use super::sidecar_scope::exported_to;
use crate::intent::target::export_to_annotation;
use crate::istio::names::{DEFAULT_DOMAIN, Protocol, host_matches};
use crate::snapshot::{ObjectRef, Objects};
use std::collections::BTreeMap;

/// Where a registry entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A Kubernetes Service.
    Kubernetes,
    /// An Istio ServiceEntry.
    ServiceEntry,
}

/// One port of a registry entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Port number.
    pub port: u32,
    /// Port name.
    pub name: Option<String>,
    /// The protocol istiod uses for it.
    pub protocol: Protocol,
}

/// One hostname as one namespace defines it (istiod's `model.Service`).
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    /// The hostname (FQDN, or a ServiceEntry host, possibly a wildcard).
    pub hostname: String,
    /// Namespace of the defining object.
    pub namespace: String,
    /// Kubernetes Service or ServiceEntry.
    pub source: Source,
    /// The defining object.
    pub reference: ObjectRef,
    /// Ports and protocols.
    pub ports: Vec<ServicePort>,
    /// exportTo (the Service annotation or the ServiceEntry field; empty means mesh default).
    pub export_to: Vec<String>,
    /// `metadata.creationTimestamp`, for istiod's oldest-first choice.
    pub created: Option<String>,
}

impl ServiceInfo {
    /// The port `port`, if defined.
    pub fn port(&self, port: u32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == port)
    }
}

/// A registry entry that defines a host: a Service or a ServiceEntry, and its port numbers.
#[derive(Debug, Clone)]
pub struct HostDefinition {
    /// The defining object.
    pub reference: ObjectRef,
    /// Its port numbers.
    pub ports: Vec<u32>,
}

/// Every registry entry, by hostname.
#[derive(Debug, Default)]
pub struct Registry<'a> {
    by_host: BTreeMap<String, Vec<ServiceInfo>>,
    default_export_to: &'a [String],
}

impl<'a> Registry<'a> {
    /// Indexes Services and ServiceEntries.
    pub fn build(objects: &'a Objects) -> Registry<'a> {
        let mut by_host: BTreeMap<String, Vec<ServiceInfo>> = BTreeMap::new();
        for s in &objects.services {
            let spec = s.spec.spec.as_ref();
            let ports = spec
                .iter()
                .flat_map(|sp| sp.ports.iter().flatten())
                .map(|p| ServicePort {
                    port: p.port as u32,
                    name: p.name.clone(),
                    protocol: Protocol::of_service_port(p.name.as_deref(), p.app_protocol.as_deref(), p.protocol.as_deref(), p.port as u32),
                })
                .collect();
            let hostname = format!("{}.{}.svc.{DEFAULT_DOMAIN}", s.meta.name, s.meta.namespace);
            // Room for one: a hostname is almost always defined once, and room for four was
            // most of the registry of a big mesh.
            by_host.entry(hostname.clone()).or_insert_with(|| Vec::with_capacity(1)).push(ServiceInfo {
                hostname,
                namespace: s.meta.namespace.clone(),
                source: Source::Kubernetes,
                reference: s.reference("Service"),
                ports,
                export_to: export_to_annotation(&s.meta.annotations),
                created: s.meta.creation_timestamp.clone(),
            });
        }
        for se in &objects.service_entries {
            let ports: Vec<ServicePort> = se
                .spec
                .ports
                .iter()
                .map(|p| ServicePort { port: p.number, name: p.name.clone(), protocol: Protocol::from_name(p.protocol.as_deref().unwrap_or_default()) })
                .collect();
            for host in &se.spec.hosts {
                by_host.entry(host.to_ascii_lowercase()).or_default().push(ServiceInfo {
                    hostname: host.to_ascii_lowercase(),
                    namespace: se.meta.namespace.clone(),
                    source: Source::ServiceEntry,
                    reference: se.reference("ServiceEntry"),
                    ports: ports.clone(),
                    export_to: se.spec.export_to.clone(),
                    created: se.meta.creation_timestamp.clone(),
                });
            }
        }
        // The Kubernetes Service first, then the oldest entry: istiod's choice since 1.30 when a
        // hostname is defined in several namespaces.
        for defs in by_host.values_mut() {
            defs.sort_by(|a, b| (a.source != Source::Kubernetes, &a.created, &a.namespace).cmp(&(b.source != Source::Kubernetes, &b.created, &b.namespace)));
        }
        Registry { by_host, default_export_to: &objects.mesh.default_service_export_to }
    }

    /// Every definition of exactly `hostname`, preferred first.
    pub fn definitions(&self, hostname: &str) -> &[ServiceInfo] {
        self.by_host.get(hostname).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every definition whose hostname (possibly a wildcard) matches `host`.
    pub fn matching(&self, host: &str) -> impl Iterator<Item = &ServiceInfo> {
        let host = host.to_string();
        self.by_host.iter().filter(move |(h, _)| host_matches(h, &host)).flat_map(|(_, v)| v.iter())
    }

    /// True when `info` is exported to callers in `caller_ns`.
    pub fn exported(&self, info: &ServiceInfo, caller_ns: &str) -> bool {
        exported_to(&info.export_to, self.default_export_to, &info.namespace, caller_ns)
    }

    /// The definition of `host` a caller in `caller_ns` sees, honouring exportTo: the
    /// Kubernetes Service, else the first matching ServiceEntry.
    pub fn visible(&self, host: &str, caller_ns: &str) -> Option<&ServiceInfo> {
        let exact = self.definitions(host).iter().find(|d| self.exported(d, caller_ns));
        exact.or_else(|| self.matching(host).find(|d| d.source == Source::ServiceEntry && self.exported(d, caller_ns)))
    }

    /// [`Registry::visible`] as the rules name it: the object and its port numbers.
    pub fn visible_host(&self, host: &str, caller_ns: &str) -> Option<HostDefinition> {
        self.visible(host, caller_ns).map(|d| HostDefinition { reference: d.reference.clone(), ports: d.ports.iter().map(|p| p.port).collect() })
    }

    /// True when some Service or ServiceEntry defines `host`.
    pub fn is_known(&self, host: &str) -> bool {
        self.by_host.contains_key(host) || self.matching(host).any(|d| d.source == Source::ServiceEntry)
    }

    /// True when a Service (or, without one, a ServiceEntry) defines `host` with `port`.
    pub fn has_port(&self, host: &str, port: u32) -> bool {
        match self.definitions(host).iter().find(|d| d.source == Source::Kubernetes) {
            Some(svc) => svc.port(port).is_some(),
            None => self.definitions(host).iter().any(|d| d.port(port).is_some()),
        }
    }

    /// The protocol of `port` in the preferred definition of `host`.
    pub fn port_protocol(&self, host: &str, port: u32) -> Option<Protocol> {
        self.definitions(host).first()?.port(port).map(|p| p.protocol)
    }

    /// The port of a host whose preferred definition has exactly one port.
    pub fn single_port(&self, host: &str) -> Option<u32> {
        match self.definitions(host).first()?.ports.as_slice() {
            [only] => Some(only.port),
            _ => None,
        }
    }

    /// True when callers in `caller_ns` may see the Service `namespace/name` (absent counts as
    /// visible: nothing hides it).
    pub fn service_exported(&self, namespace: &str, name: &str, caller_ns: &str) -> bool {
        let host = format!("{name}.{namespace}.svc.{DEFAULT_DOMAIN}");
        self.definitions(&host).iter().filter(|d| d.source == Source::Kubernetes).all(|d| self.exported(d, caller_ns))
    }
}

/// The namespace part of a Kubernetes service FQDN (empty for other hosts).
pub fn service_namespace(host: &str) -> String {
    let suffix = format!(".svc.{DEFAULT_DOMAIN}");
    host.strip_suffix(&suffix).and_then(|h| h.split_once('.')).map(|(_, ns)| ns.to_string()).unwrap_or_default()
}
