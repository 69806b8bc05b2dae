//! The Helm chart in `helm/cap-sandbox`, rendered and checked without a Helm binary.
//!
//! The chart's templates keep to a small subset of Helm's language: `{{ .Values.x.y }}`
//! (optionally `| quote`), `{{ .Release.Namespace }}`, `{{ .Release.Service }}`,
//! `{{ required "why" .Values.x }}`, and whole-line `{{- if .Values.x }}` / `{{- end }}`.
//! The renderer below implements exactly that subset and fails on anything else, so the
//! chart cannot drift out of what is checked here. What is validated: every document is YAML
//! and deserialises into its `k8s-openapi` type; the RBAC is exactly what the backend uses;
//! the proxy's labels and port, the RuntimeClass and the session-Pod label agree with the
//! backend's constants. What is not: Helm's own parser, and the API server's validation
//! (run `helm template` and `kubectl apply --dry-run=server` in CI against a cluster).

use std::path::{Path, PathBuf};

use cap_sandbox_kube::{KubeConfig, MANAGED_BY};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use pretty_assertions::assert_eq;
use serde_json::Value;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/cap-sandbox")
}

fn lookup<'a>(values: &'a Value, path: &str) -> Result<&'a Value, String> {
    let rest = path
        .strip_prefix(".Values.")
        .ok_or_else(|| format!("unsupported reference {path}"))?;
    rest.split('.').try_fold(values, |value, key| {
        value.get(key).ok_or_else(|| format!("no value {path}"))
    })
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
        && value.as_str() != Some("")
        && value.as_i64() != Some(0)
}

/// One `{{ ... }}` expression.
fn expression(expr: &str, values: &Value) -> Result<String, String> {
    let expr = expr.trim();
    match expr {
        ".Release.Namespace" => return Ok("cap".into()),
        ".Release.Service" => return Ok("Helm".into()),
        _ => {}
    }
    if let Some(rest) = expr.strip_prefix("required \"") {
        let (why, path) = rest
            .split_once("\" ")
            .ok_or_else(|| format!("bad required: {expr}"))?;
        let value = lookup(values, path.trim())?;
        return if truthy(value) {
            Ok(scalar(value))
        } else {
            Err(format!("required: {why}"))
        };
    }
    if let Some(path) = expr.strip_suffix("| quote") {
        return Ok(Value::String(scalar(lookup(values, path.trim())?)).to_string());
    }
    Ok(scalar(lookup(values, expr)?))
}

/// Renders one template with `values`.
fn render(template: &str, values: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut skipping = Vec::new();
    for line in template.lines() {
        let trimmed = line.trim();
        if let Some(condition) = trimmed
            .strip_prefix("{{- if ")
            .and_then(|rest| rest.strip_suffix("}}"))
        {
            skipping.push(!truthy(lookup(values, condition.trim())?));
            continue;
        }
        if trimmed == "{{- end }}" {
            skipping.pop().ok_or("`end` without `if`")?;
            continue;
        }
        if skipping.iter().any(|skip| *skip) {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ in {line}"))?;
            out.push_str(&expression(&rest[start + 2..start + end], values)?);
            rest = &rest[start + end + 2..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    if !skipping.is_empty() {
        return Err("`if` without `end`".into());
    }
    Ok(out)
}

fn values(overrides: &[(&str, Value)]) -> Value {
    let text = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let mut values: Value = serde_yaml_ng::from_str(&text).unwrap();
    for (path, value) in overrides {
        let mut slot = &mut values;
        for key in path.split('.') {
            slot = slot.get_mut(key).unwrap();
        }
        *slot = value.clone();
    }
    values
}

/// Every document of every template, rendered, as JSON values.
fn documents(values: &Value) -> Result<Vec<Value>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(chart().join("templates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    let mut documents = Vec::new();
    for path in paths {
        let template = std::fs::read_to_string(&path).unwrap();
        let rendered = render(&template, values).map_err(|e| format!("{}: {e}", path.display()))?;
        for document in rendered.split("\n---\n") {
            let value: Value = serde_yaml_ng::from_str(document)
                .map_err(|e| format!("{}: {e}\n{document}", path.display()))?;
            if !value.is_null() {
                documents.push(value);
            }
        }
    }
    Ok(documents)
}

fn find<T: serde::de::DeserializeOwned>(documents: &[Value], kind: &str, name: &str) -> T {
    let document = documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    serde_json::from_value(document.clone()).unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

fn rendered() -> Vec<Value> {
    documents(&values(&[("egressProxy.clusterIP", "10.96.0.50".into())])).unwrap()
}

#[test]
fn the_chart_metadata_and_every_document_parse() {
    let chart_yaml: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart_yaml["apiVersion"], "v2");
    assert_eq!(chart_yaml["name"], "cap-sandbox");
    let kinds: Vec<String> = rendered()
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Deployment/cap-egress-proxy",
            "Service/cap-egress-proxy",
            "NetworkPolicy/cap-egress-proxy",
            "ServiceAccount/cap-sandbox",
            "Role/cap-sandbox-sessions",
            "RoleBinding/cap-sandbox-sessions",
            "RuntimeClass/gvisor",
            "Deployment/cap-sandbox",
            "Service/cap-sandbox",
        ]
    );
}

#[test]
fn the_role_grants_exactly_what_the_backend_uses_in_its_namespace() {
    let documents = rendered();
    let role: Role = find(&documents, "Role", "cap-sandbox-sessions");
    assert_eq!(role.metadata.namespace.as_deref(), Some("cap-sandboxes"));
    let rule = |group: &str, resource: &str, verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resource.into()]),
        verbs: verbs.iter().map(|verb| (*verb).to_owned()).collect(),
        ..PolicyRule::default()
    };
    assert_eq!(
        role.rules.unwrap(),
        [
            rule("", "pods", &["create", "get", "list", "delete"]),
            rule("", "pods/exec", &["create"]),
            rule(
                "networking.k8s.io",
                "networkpolicies",
                &["create", "delete"]
            ),
        ]
    );
    let binding: RoleBinding = find(&documents, "RoleBinding", "cap-sandbox-sessions");
    assert_eq!(binding.metadata.namespace.as_deref(), Some("cap-sandboxes"));
    assert_eq!(binding.role_ref.kind, "Role");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "cap-sandbox", Some("cap"))
    );
    let account: ServiceAccount = find(&documents, "ServiceAccount", "cap-sandbox");
    assert_eq!(account.metadata.namespace.as_deref(), Some("cap"));
}

#[test]
fn the_proxy_is_where_session_policies_let_pods_go_and_is_fenced_itself() {
    let documents = rendered();
    let defaults = KubeConfig::new("cap-sandboxes", "http://10.96.0.50:3128");
    let proxy: Deployment = find(&documents, "Deployment", "cap-egress-proxy");
    assert_eq!(proxy.metadata.namespace.as_deref(), Some("cap-sandboxes"));
    let template = proxy.spec.unwrap().template;
    let labels = template.metadata.unwrap().labels.unwrap();
    for (key, value) in &defaults.proxy.pod_labels {
        assert_eq!(labels.get(key), Some(value), "{key}");
    }
    let container = &template.spec.unwrap().containers[0];
    assert_eq!(
        container.args.as_deref().unwrap(),
        ["--listen=0.0.0.0:3128", "--allow=registries"]
    );
    let service: Service = find(&documents, "Service", "cap-egress-proxy");
    let spec = service.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.50"));
    assert_eq!(spec.ports.unwrap()[0].port, defaults.proxy.port);

    let policy: NetworkPolicy = find(&documents, "NetworkPolicy", "cap-egress-proxy");
    let spec = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(
        spec["ingress"],
        serde_json::json!([{
            "from": [{"podSelector": {"matchLabels": {MANAGED_BY.0: MANAGED_BY.1}}}],
            "ports": [{"port": 3128, "protocol": "TCP"}]
        }])
    );
    let public = &spec["egress"][1]["to"][0]["ipBlock"];
    assert_eq!(public["cidr"], "0.0.0.0/0");
    for private in [
        "10.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
    ] {
        assert!(
            public["except"]
                .as_array()
                .unwrap()
                .contains(&private.into()),
            "{private}"
        );
    }
}

#[test]
fn the_service_runs_the_kubernetes_backend_against_the_proxy_address() {
    let documents = rendered();
    let deployment: Deployment = find(&documents, "Deployment", "cap-sandbox");
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("cap-sandbox"));
    let args = pod.containers[0].args.clone().unwrap();
    for expected in [
        "--backend=kubernetes",
        "--kube-namespace=cap-sandboxes",
        "--kube-proxy-url=http://10.96.0.50:3128",
        "--kube-runtime-class=gvisor",
    ] {
        assert!(
            args.iter().any(|arg| arg == expected),
            "{expected} not in {args:?}"
        );
    }
    let class: RuntimeClass = find(&documents, "RuntimeClass", "gvisor");
    assert_eq!(class.handler, "runsc");
    assert_eq!(
        KubeConfig::new("ns", "http://10.0.0.1:3128").runtime_class,
        class.metadata.name.unwrap()
    );
}

#[test]
fn missing_required_values_and_unsupported_syntax_fail_the_render() {
    let error = documents(&values(&[])).unwrap_err();
    assert!(error.contains("required: egressProxy.clusterIP"), "{error}");
    let no_class = documents(&values(&[
        ("egressProxy.clusterIP", "10.96.0.50".into()),
        ("runtimeClass.create", false.into()),
    ]))
    .unwrap();
    assert!(no_class.iter().all(|d| d["kind"] != "RuntimeClass"));
    let values = values(&[]);
    assert!(render("{{ toYaml .Values.sandbox }}", &values).is_err());
    assert!(render("{{ .Values.nope }}", &values).is_err());
    assert!(render("{{- if .Values.runtimeClass.create }}\n", &values).is_err());
}
