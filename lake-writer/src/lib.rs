//! lake-writer: Xledger pages to Parquet in a lake (issue 4 builds it).
