//! Everything that talks to AWS, behind the narrow `Ec2` trait.

pub mod config;
pub mod ec2;
pub mod error;
pub mod fake;
pub mod instrumented;
pub mod model;
