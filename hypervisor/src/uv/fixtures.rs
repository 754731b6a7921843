//! Fixtures shared by the ultravisor tests (`tests`, `partition_tests`): a
//! partition of two 2 MiB host extents and a model ultravisor whose view of
//! hypervisor memory tags every page.
use super::host::PateStore;
use super::model::ModelUv;
use super::SVM_PAGE_SIZE;
use crate::mm::extent::ExtentMap;
use alloc::vec::Vec;

/// Host real address of guest real 0: deliberately not 0, so "gpa == host
/// address" mistakes fail; the second 2 MiB of the partition lie elsewhere
/// (below the first), so "one contiguous block" mistakes fail too.
pub const BASE: u64 = 0x4_1220_0000;
pub const BASE2: u64 = 0x2_0000_0000;
pub const EXTENT: u64 = 2 << 20;
pub const MEM: u64 = 2 * EXTENT;
pub const P: u64 = SVM_PAGE_SIZE;

/// The partition's memory: guest real 0 at `BASE`, the second extent at `BASE2`.
pub fn memory() -> ExtentMap {
    ExtentMap::new(&[(BASE, EXTENT), (BASE2, EXTENT)]).unwrap()
}

/// The hypervisor's page behind `gpa`.
pub fn hpa(gpa: u64) -> u64 {
    if gpa < EXTENT {
        BASE + gpa
    } else {
        BASE2 + gpa - EXTENT
    }
}

/// A model whose hypervisor memory holds tag `0x100 + page` in every page.
pub fn model() -> ModelUv {
    let mut uv = ModelUv::new();
    for i in 0..MEM / P {
        uv.hv_mem.insert(hpa(i * P), 0x100 + i);
    }
    uv
}

/// A partition table that records every entry stored.
#[derive(Default)]
pub struct Table(pub Vec<(u32, u64, u64)>);

impl PateStore for Table {
    fn store(&mut self, lpid: u32, dw0: u64, dw1: u64) {
        self.0.push((lpid, dw0, dw1));
    }
}
