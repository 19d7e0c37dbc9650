//! Kubernetes mode: MirrorPolicy objects reconciled by a kube-runtime controller.

pub mod status;
