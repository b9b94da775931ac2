//! The QEMU engine: qemu-system-x86_64 (KVM or TCG) with shared RAM, QMP freeze/thaw.
