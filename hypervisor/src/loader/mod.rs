//! Loading guest kernel images into partition memory.
pub mod elf;
pub mod layout;
