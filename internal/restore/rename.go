package restore

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// ErrBadRename is matched by every refusal of --ns-from/--ns-to: a pattern
// that does not parse, pairs of different counts, and, once the backup's
// namespaces are known, a renaming that maps two of them onto one, onto a
// namespace the server keeps for itself (admin, local, config, system.*),
// or onto one of the namespaces it renames. All of them come before the
// first write.
var ErrBadRename = errors.New("bad namespace renaming")

// Renamer maps namespaces by mongorestore's --nsFrom/--nsTo pairs
// (mongo-tools mongorestore/ns): in a "from" pattern "$name$" captures the
// shortest run of characters that lets the whole namespace match, and the
// "to" pattern puts it where it names it; a pair without "$" may use "*"
// instead (each "*" of "from" is a capture, given in order to the "*" of
// "to"; "\*" is a literal star and "\\" a backslash). When several pairs
// match a namespace the last given wins, as in mongorestore.
type Renamer struct {
	rules []renameRule // in precedence order: the last pair given first
}

type renameRule struct {
	from, to string
	re       *regexp.Regexp
	// parts is the "to" pattern: literal text, or a capture's index when
	// capture is set.
	parts []renamePart
}

type renamePart struct {
	text    string
	capture int // 1-based; 0 for text
}

// NewRenamer parses the pairs from[i] -> to[i]. No pairs give a nil
// Renamer (nothing renamed).
func NewRenamer(from, to []string) (*Renamer, error) {
	if len(from) != len(to) {
		return nil, fmt.Errorf("%w: %d --ns-from and %d --ns-to: give them in pairs", ErrBadRename, len(from), len(to))
	}
	if len(from) == 0 {
		return nil, nil
	}
	r := &Renamer{}
	for i := len(from) - 1; i >= 0; i-- {
		rule, err := parseRename(from[i], to[i])
		if err != nil {
			return nil, fmt.Errorf("%w: --ns-from %q --ns-to %q: %w", ErrBadRename, from[i], to[i], err)
		}
		r.rules = append(r.rules, rule)
	}
	return r, nil
}

// Map returns the new name of ns and true, or false when no pair matches.
func (r *Renamer) Map(ns string) (string, bool) {
	if r == nil {
		return ns, false
	}
	for _, rule := range r.rules {
		m := rule.re.FindStringSubmatch(ns)
		if m == nil {
			continue
		}
		var b strings.Builder
		for _, p := range rule.parts {
			if p.capture > 0 {
				b.WriteString(m[p.capture])
			} else {
				b.WriteString(p.text)
			}
		}
		return b.String(), true
	}
	return ns, false
}

// starsToVars turns each unescaped "*" of p into "$<n>$" (n counting from
// 1) and unescapes "\*" and "\\", for a pair without "$".
func starsToVars(p string) (string, int) {
	var b strings.Builder
	n := 0
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '\\' && i+1 < len(p) && (p[i+1] == '*' || p[i+1] == '\\'):
			b.WriteByte(p[i+1])
			i++
		case p[i] == '\\':
			// A lone backslash escapes nothing: mongo-tools drops it.
		case p[i] == '*':
			n++
			fmt.Fprintf(&b, "$%d$", n)
		default:
			b.WriteByte(p[i])
		}
	}
	return b.String(), n
}

// splitVars splits a pattern into literal text and "$name$" variables.
func splitVars(p string) (texts []string, vars []string, err error) {
	for {
		i := strings.IndexByte(p, '$')
		if i < 0 {
			return append(texts, p), vars, nil
		}
		j := strings.IndexByte(p[i+1:], '$')
		if j < 0 {
			return nil, nil, errors.New("an odd number of '$': a variable is written $name$")
		}
		texts = append(texts, p[:i])
		vars = append(vars, p[i+1:i+1+j])
		p = p[i+2+j:]
	}
}

func parseRename(from, to string) (renameRule, error) {
	rule := renameRule{from: from, to: to}
	if from == "" || to == "" {
		return rule, errors.New("empty pattern")
	}
	if !utf8.ValidString(from) || !utf8.ValidString(to) {
		return rule, errors.New("not valid UTF-8")
	}
	f, t := from, to
	if !strings.Contains(from, "$") {
		var nf, nt int
		f, nf = starsToVars(from)
		t, nt = starsToVars(to)
		if nf != nt {
			return rule, fmt.Errorf("%d '*' in --ns-from and %d in --ns-to: each '*' of one is a '*' of the other", nf, nt)
		}
		if strings.Contains(to, "$") {
			return rule, errors.New("'$' in --ns-to names a variable, and --ns-from has none")
		}
	}
	texts, vars, err := splitVars(f)
	if err != nil {
		return rule, fmt.Errorf("--ns-from: %w", err)
	}
	index := map[string]int{}
	var re strings.Builder
	re.WriteString("(?s)^")
	for i, text := range texts {
		re.WriteString(regexp.QuoteMeta(text))
		if i < len(vars) {
			v := vars[i]
			if _, dup := index[v]; dup {
				return rule, fmt.Errorf("--ns-from: variable $%s$ used more than once", v)
			}
			index[v] = len(index) + 1
			re.WriteString("(.*?)")
		}
	}
	re.WriteString("$")
	rule.re = regexp.MustCompile(re.String()) // only quoted text and groups: always compiles
	texts, vars, err = splitVars(t)
	if err != nil {
		return rule, fmt.Errorf("--ns-to: %w", err)
	}
	for i, text := range texts {
		if text != "" {
			rule.parts = append(rule.parts, renamePart{text: text})
		}
		if i < len(vars) {
			n, ok := index[vars[i]]
			if !ok {
				return rule, fmt.Errorf("--ns-to: variable $%s$ is not in --ns-from", vars[i])
			}
			rule.parts = append(rule.parts, renamePart{capture: n})
		}
	}
	return rule, nil
}

// checkTarget refuses a new name the restore must not write: not
// "db.coll", a name the server refuses, or a namespace it keeps (admin,
// local, config, system.*).
func checkTarget(src, dst string) error {
	db, coll, ok := strings.Cut(dst, ".")
	if !ok {
		return fmt.Errorf("%w: %s would be renamed %q, which is not \"db.collection\"", ErrBadRename, src, dst)
	}
	if err := validDB(db); err != nil {
		return fmt.Errorf("%w: %s would be renamed %q: %w", ErrBadRename, src, dst, err)
	}
	if err := validColl(db, coll); err != nil {
		return fmt.Errorf("%w: %s would be renamed %q: %w", ErrBadRename, src, dst, err)
	}
	switch {
	case db == "admin" || db == "local" || db == "config":
		return fmt.Errorf("%w: %s would be renamed %s, into the server's own database %s", ErrBadRename, src, dst, db)
	case nsClassOf(dst) != nsPlain,
		// system.js (stored JavaScript) only from a system.js.
		strings.HasPrefix(coll, "system.") && !strings.HasSuffix(src, ".system.js"):
		return fmt.Errorf("%w: %s would be renamed %s, a system namespace", ErrBadRename, src, dst)
	case src == dst:
		return fmt.Errorf("%w: %s would keep its name (the old names are never written: give it a new one)", ErrBadRename, src)
	}
	return nil
}
