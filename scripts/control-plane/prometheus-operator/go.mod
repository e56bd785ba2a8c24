// The Prometheus operator's CRDs (PrometheusRule, PodMonitor) for the local clusters: the module
// ships them under example/prometheus-operator-crd/; nothing here is compiled.
module hybrid-infra/control-plane/prometheus-operator

go 1.26

require github.com/prometheus-operator/prometheus-operator v0.85.0
