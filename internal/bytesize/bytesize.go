package bytesize

import "fmt"

// IEC formats n with binary prefixes: "1.5 MiB".
func IEC(n int64) string { return format(n, 1024, "KMGTPE", "i") }

// SI formats n with decimal prefixes: "1.5 MB".
func SI(n int64) string { return format(n, 1000, "kMGTPE", "") }

func format(n, unit int64, prefixes, infix string) string {
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := unit, 0
	for m := n / unit; m >= unit && exp < len(prefixes)-1; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %c%sB", float64(n)/float64(div), prefixes[exp], infix)
}
