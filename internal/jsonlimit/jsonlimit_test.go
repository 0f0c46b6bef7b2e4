package jsonlimit

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		l     Limits
		want  Shape
		fails bool
	}{
		{name: "scalars and strings, keys counted", in: `{"a": 1, "b": [true, null, -2.5e3, "x\"]"]}`, want: Shape{Values: 9, Containers: 2, MaxDepth: 2}},
		{name: "escaped quote does not end a string", in: `["a\\", "b\"c"]`, want: Shape{Values: 3, Containers: 1, MaxDepth: 1}},
		{name: "depth at the bound", in: strings.Repeat("[", 5) + strings.Repeat("]", 5), l: Limits{Depth: 5}, want: Shape{Values: 5, Containers: 5, MaxDepth: 5}},
		{name: "depth past the bound", in: strings.Repeat("[", 6) + strings.Repeat("]", 6), l: Limits{Depth: 5}, fails: true},
		{name: "values past the bound", in: "[" + strings.Repeat("1,", 10) + "1]", l: Limits{Values: 10}, fails: true},
		{name: "containers past the bound", in: "[" + strings.Repeat("{},", 3) + "{}]", l: Limits{Containers: 4}, fails: true},
		{name: "containers at the bound", in: "[" + strings.Repeat("{},", 2) + "{}]", l: Limits{Containers: 4}, want: Shape{Values: 4, Containers: 4, MaxDepth: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Check([]byte(tc.in), tc.l)
			if tc.fails {
				if !errors.Is(err, ErrTooComplex) {
					t.Fatalf("err = %v, want ErrTooComplex", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Check = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestCheckAllocatesNothing: the point of Check is to cost no memory on a
// crafted input, whatever its size.
func TestCheckAllocatesNothing(t *testing.T) {
	b := []byte(strings.Repeat("[", 1<<20))
	if n := testing.AllocsPerRun(3, func() { _, _ = Check(b, Limits{}) }); n != 0 {
		t.Fatalf("Check allocated %v times", n)
	}
}
