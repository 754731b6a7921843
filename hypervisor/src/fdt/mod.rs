//! Flattened device trees: parsing the one skiboot hands us (`host`), and later
//! building the ones our partitions see.
pub mod host;
pub mod reader;
pub mod writer;
