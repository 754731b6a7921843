//! The interpartition logical LAN (sPAPR `l-lan`, Linux's ibmveth) and the
//! virtual switch between adapters (filled in by the ibmveth work).
