//! Token packing into fixed-length uint32 shards.
