//! The vocabulary every crmkpi stage shares: the event record of events.md (its fields, its 23
//! event types and the fields each type requires), the columns of the event lake, and the run
//! configuration of cli.md.
//!
//! Kept deliberately small: no I/O besides reading the configuration file and listing a
//! directory's entries for an error message.

pub mod config;
pub mod dir_entries;
pub mod event;
pub mod pause;

pub use config::{
    BusinessHours, ClvConfig, ComputeConfig, Config, ConfigError, DEFAULT_CONFIG_FILE, HealthWeights, parse_bytes,
};
pub use event::{EventType, Field, LAKE_COLUMNS, LakeColumn, LakeType};
