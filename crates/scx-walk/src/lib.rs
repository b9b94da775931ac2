//! Kernel walkers: from a frozen guest (any engine, or a vmcore) to a
//! [`dump_schema::FailureDumpReport`], each section filled or carrying its reason.
