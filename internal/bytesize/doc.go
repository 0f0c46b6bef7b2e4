// Package bytesize owns how a0 writes byte counts for people: IEC units
// (KiB, MiB) for sizes in messages, SI units (kB, MB) for sizes and rates
// on the CLI, where MB/s compares with the benchmarks' MB = 10^6 bytes.
package bytesize
