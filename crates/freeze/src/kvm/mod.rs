//! The native KVM engine: a small VMM with a freeze coordinator.
