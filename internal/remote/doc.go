// Package remote owns the off-node copies of backups: a small Store
// interface (put, get, stat, list, delete of whole objects under one
// prefix) and its S3 implementation on minio-go, which uploads large files
// as resumable multipart uploads with bounded memory. Every implementation
// passes the one shared test suite, package remotetest (Suite.Run), run
// against a real store: S3 against versitygw (package internal/s3gw).
package remote
