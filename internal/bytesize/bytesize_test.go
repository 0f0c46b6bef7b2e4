package bytesize

import "testing"

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		n       int64
		iec, si string
	}{
		{0, "0 B", "0 B"},
		{999, "999 B", "999 B"},
		{1000, "1000 B", "1.0 kB"},
		{1536, "1.5 KiB", "1.5 kB"},
		{5 << 20, "5.0 MiB", "5.2 MB"},
		{3 << 40, "3.0 TiB", "3.3 TB"},
	} {
		if got := IEC(tc.n); got != tc.iec {
			t.Errorf("IEC(%d) = %q, want %q", tc.n, got, tc.iec)
		}
		if got := SI(tc.n); got != tc.si {
			t.Errorf("SI(%d) = %q, want %q", tc.n, got, tc.si)
		}
	}
}
