//! x86_64 specifics: page-table walks and the kernel's fixed virtual layout.

pub mod layout;
pub mod paging;
