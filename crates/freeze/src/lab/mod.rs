//! Guest-lab provisioning: the sched_ext kernel, initramfs, test schedulers, cached by version.
