package jsonlimit

import (
	"errors"
	"fmt"
)

// ErrTooComplex is matched by every refusal of Check.
var ErrTooComplex = errors.New("JSON too complex")

// Limits bound one JSON document. A zero field means no bound.
type Limits struct {
	// Depth bounds the nesting of arrays and objects.
	Depth int
	// Values bounds the values in the document: scalars, strings (object
	// keys too: a decoder builds each), arrays and objects.
	Values int
	// Containers bounds the arrays and objects in the document.
	Containers int
}

// Shape is what Check counted.
type Shape struct {
	Values, Containers, MaxDepth int
}

// Check counts b's values, containers and depth without building
// anything and refuses b when one exceeds l. It is not a validator: the
// decoder that runs after it still refuses malformed JSON; Check only
// makes sure that decoder's work is bounded. Counting stops at the first
// bound exceeded, so a crafted input costs one pass at most.
func Check(b []byte, l Limits) (Shape, error) {
	var s Shape
	depth := 0
	// prev is the last structural byte outside a string, so that a scalar
	// (number, true, false, null) is counted once, at its first byte.
	prev := byte(0)
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[':
			depth++
			s.Containers++
			s.Values++
			if depth > s.MaxDepth {
				s.MaxDepth = depth
			}
			if l.Depth > 0 && depth > l.Depth {
				return s, fmt.Errorf("%w: nested deeper than %d levels", ErrTooComplex, l.Depth)
			}
		case '}', ']':
			depth--
		case '"':
			// Skip the string: a key or a value, each becomes a string.
			s.Values++
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case ',', ':':
		default:
			// The first byte of a scalar follows a structural byte.
			switch prev {
			case 0, '{', '[', ',', ':':
				s.Values++
			}
		}
		prev = c
		if l.Values > 0 && s.Values > l.Values {
			return s, fmt.Errorf("%w: more than %d values", ErrTooComplex, l.Values)
		}
		if l.Containers > 0 && s.Containers > l.Containers {
			return s, fmt.Errorf("%w: more than %d arrays and objects", ErrTooComplex, l.Containers)
		}
	}
	return s, nil
}
