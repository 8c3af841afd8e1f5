//! Test support: a real Kubernetes control plane for kseal tests.
