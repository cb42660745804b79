package schema

import (
	"strconv"
	"strings"
)

// pathElem is one step of a location inside the stage dict: a dict key or a
// list index.
type pathElem struct {
	key     string
	index   int
	isIndex bool
}

// path locates a value inside the stage dict, e.g. jobs[0].steps[1].cmd.
type path []pathElem

// key returns a new path extended by dict key k.
func (p path) key(k string) path {
	return append(p[:len(p):len(p)], pathElem{key: k})
}

// index returns a new path extended by list index i.
func (p path) index(i int) path {
	return append(p[:len(p):len(p)], pathElem{index: i, isIndex: true})
}

// String renders the path as jobs[0].steps[1].cmd; keys that are not simple
// names are quoted: configs[0]["a b"].
func (p path) String() string {
	var b strings.Builder
	for _, e := range p {
		switch {
		case e.isIndex:
			b.WriteString("[" + strconv.Itoa(e.index) + "]")
		case simpleKey(e.key):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(e.key)
		default:
			b.WriteString("[" + strconv.Quote(e.key) + "]")
		}
	}
	return b.String()
}

// simpleKey reports whether k can be written after a dot in a path.
func simpleKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r == '-' || r == '@' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

// issue is a problem found in the returned stage dict, before its source
// position is known.
type issue struct {
	path path
	msg  string
}
