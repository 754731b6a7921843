//! Partition NVRAM kept in the host's NVRAM (`papr::nvram`, docs/vscsi.md):
//! when OPAL has one (skiboot's NVRAM partition of the PNOR flash), each
//! partition's 64 KiB live in a slot named after it inside Paprika's CHRP
//! partition there, restored when the partitions are created and written
//! through on every `nvram-store`, so they survive a machine power-off.
//! Without one (no PNOR: skiboot says `NVRAM: Failed to load`) nothing changes:
//! the NVRAM then lives only as long as the machine runs.
use core::sync::atomic::Ordering;

use alloc::vec;

use super::lpar::Partition;
use crate::papr::nvram::{self as nv, NVRAM_SIZE, SLOT_NAME_LEN};
use crate::platform::opal;
use crate::{info, warn};

/// No slot in the host NVRAM.
pub const NO_SLOT: u64 = u64::MAX;

/// The host NVRAM's size: the CHRP partitions' lengths added up (OPAL refuses
/// reads past the end, and skiboot keeps the whole NVRAM partitioned).
fn host_size() -> Option<usize> {
    let mut off = 0usize;
    for _ in 0..4096 {
        let mut h = [0u8; nv::CHRP_HEADER_LEN];
        if opal::nvram_read(&mut h, off as u64).is_err() {
            break;
        }
        let len = usize::from(u16::from_be_bytes([h[2], h[3]])) * 16;
        if len == 0 || nv::chrp_checksum(&h) != h[1] {
            break;
        }
        off += len;
    }
    (off > 0).then_some(off)
}

/// Finds (or makes) every partition's slot and restores what it holds.
pub fn load(parts: &[Partition]) {
    if parts.is_empty() || !opal::has_token(opal::OPAL_READ_NVRAM) {
        return;
    }
    let Some(size) = host_size() else {
        info!("host NVRAM: none (no PNOR flash); partition NVRAM is not kept across power-off");
        return;
    };
    let mut image = vec![0u8; size];
    if opal::nvram_read(&mut image, 0).is_err() {
        warn!("host NVRAM: read of {size} bytes failed; partition NVRAM not kept");
        return;
    }
    let Some(area) = nv::host_area(&mut image, parts.len()) else {
        warn!(
            "host NVRAM: no room for {} partition slot(s) in {size} bytes",
            parts.len()
        );
        return;
    };
    if !area.dirty.is_empty()
        && opal::nvram_write(&image[area.dirty.clone()], area.dirty.start as u64).is_err()
    {
        warn!("host NVRAM: creating Paprika's partition failed");
        return;
    }
    for p in parts {
        let Some((slot, new)) = nv::host_slot(&mut image[area.data.clone()], &p.name) else {
            warn!("host NVRAM: no slot left for partition {}", p.name);
            continue;
        };
        let at = area.data.start + slot;
        let data = at + SLOT_NAME_LEN;
        let mut n = p.nvram.lock();
        let ok = if new {
            // Name and a fresh NVRAM.
            opal::nvram_write(&image[at..data], at as u64).is_ok()
                && opal::nvram_write(n.bytes(), data as u64).is_ok()
        } else {
            n.restore(&image[data..data + NVRAM_SIZE])
        };
        if ok {
            p.nvram_host.store(data as u64, Ordering::Release);
            info!(
                "PAPRIKA nvram: {} in host NVRAM at {:#x} ({})",
                p.name,
                data,
                if new { "new" } else { "restored" }
            );
        }
    }
}

/// After `nvram-store` changed `bytes` at `offset` of partition `p`'s NVRAM:
/// the same bytes to its host slot, if it has one.
pub fn store(p: &Partition, offset: usize, bytes: &[u8]) {
    let base = p.nvram_host.load(Ordering::Acquire);
    if base == NO_SLOT {
        return;
    }
    if opal::nvram_write(bytes, base + offset as u64).is_err() {
        super::vcpu::rate_limited_warn(p, "host NVRAM write failed at offset", offset as u64);
    }
}
