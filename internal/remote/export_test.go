package remote

// MinPartSize is S3's smallest part, for the external tests (s3suite_test.go).
const MinPartSize = minPartSize
