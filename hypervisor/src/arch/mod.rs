//! Architecture layer. Paprika runs only on 64-bit POWER (ISA v3.0B and v3.1).
pub mod ppc64;
