// Package s3gw starts a real S3 server for tests: versitygw v1.8.0 with its
// posix backend on a temporary directory, on loopback, over plain HTTP or
// TLS with a certificate it makes. It fails the test under CI=true when the
// versitygw binary is missing (.ci/run installs it with go install) and
// skips it elsewhere, as package oracle does for the stock tools.
package s3gw
