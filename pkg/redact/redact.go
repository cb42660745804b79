// Package redact removes secret values from output streams before they leave
// the agent.
//
// A Matcher is built once per job from the job's secrets: for every secret
// it matches the raw value and the forms a build commonly prints it in
// (see Forms). A Writer wraps an io.Writer and replaces every occurrence of
// any of those patterns by Mask, also when an occurrence is split across
// Write calls (down to one byte per call): it holds back only the bytes that
// may still become part of a match, at most the longest pattern, and Flush
// releases them at the end of the stream.
//
// Overlapping occurrences are replaced together: the output is the input
// with every maximal run of overlapping matches replaced by one Mask.
//
// Matching is Aho-Corasick over all patterns, so the cost per byte does not
// grow with the number of secrets; bytes that cannot start a pattern are
// copied in bulk.
package redact

import (
	"encoding/base64"
	"io"
	"net/url"
	"slices"
	"strings"
)

// Mask replaces a secret.
const Mask = "***"

// MinLen is the length below which a secret is not redacted: replacing every
// occurrence of two or three bytes would destroy the logs and hide nothing.
const MinLen = 4

// minLineLen is how long a line of a multi-line secret must be to be
// redacted on its own.
const minLineLen = 9

// Forms returns the patterns that redact secret: the value itself, its
// standard and URL-safe base64 encodings (padded and unpadded), its URL
// query and path escapings, the same of the value without surrounding white
// space, and for a multi-line secret (an SSH key) the value with \n and with
// \r\n line ends and each of its lines longer than 8 bytes (except PEM armor
// lines such as -----BEGIN ... KEY-----, which are not secret). Patterns
// shorter than MinLen are left out; a secret shorter than MinLen gives none.
func Forms(secret string) []string {
	if len(secret) < MinLen {
		return nil
	}
	var out []string
	add := func(s string) {
		if len(s) >= MinLen && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	variants := []string{secret, strings.TrimSpace(secret)}
	if strings.ContainsAny(secret, "\r\n") {
		lf := strings.ReplaceAll(secret, "\r\n", "\n")
		crlf := strings.ReplaceAll(lf, "\n", "\r\n")
		variants = append(variants, lf, crlf, strings.TrimSpace(lf), strings.TrimSpace(crlf))
		for line := range strings.SplitSeq(lf, "\n") {
			line = strings.TrimSpace(line)
			if len(line) >= minLineLen && !strings.HasPrefix(line, "-----") {
				add(line)
			}
		}
	}
	for _, v := range variants {
		if len(v) < MinLen {
			continue
		}
		add(v)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			add(enc.EncodeToString([]byte(v)))
		}
		add(url.QueryEscape(v))
		add(url.PathEscape(v))
	}
	return out
}

// Matcher finds the patterns of a set of secrets. It is immutable and safe
// for concurrent use by many Writers.
type Matcher struct {
	// Trie of the patterns with Aho-Corasick failure links. Node 0 is the
	// root; its transitions are a dense table, the others' sorted edge lists
	// (most nodes of long patterns have a single child).
	root      [256]int32
	edgeStart []int32 // node i's edges are edges[edgeStart[i]:edgeStart[i+1]]
	edges     []edge
	fail      []int32
	depth     []int32
	// match is the length of the longest pattern that ends at the node (a
	// suffix of its string), 0 for none. Shorter patterns ending at the same
	// place lie inside it, so it is the only one that matters.
	match    []int32
	patterns int
	maxLen   int
	skipped  int
}

type edge struct {
	c    byte
	next int32
}

// New builds the matcher of secrets (each expanded with Forms). Empty and
// short secrets are skipped and counted (Skipped).
func New(secrets []string) *Matcher {
	var pats []string
	skipped := 0
	for _, s := range secrets {
		if len(s) < MinLen {
			if s != "" {
				skipped++
			}
			continue
		}
		pats = append(pats, Forms(s)...)
	}
	slices.Sort(pats)
	pats = slices.Compact(pats)
	m := build(pats)
	m.skipped = skipped
	return m
}

// NewPatterns builds a matcher of exactly these patterns (no Forms
// expansion); patterns shorter than MinLen are skipped.
func NewPatterns(patterns []string) *Matcher {
	var pats []string
	skipped := 0
	for _, p := range patterns {
		if len(p) < MinLen {
			skipped++
			continue
		}
		pats = append(pats, p)
	}
	slices.Sort(pats)
	m := build(slices.Compact(pats))
	m.skipped = skipped
	return m
}

// Skipped is how many secrets were too short (under MinLen bytes) to be redacted.
func (m *Matcher) Skipped() int { return m.skipped }

// Patterns is how many distinct patterns the matcher looks for.
func (m *Matcher) Patterns() int { return m.patterns }

// Empty tells whether the matcher has nothing to redact.
func (m *Matcher) Empty() bool { return m == nil || m.patterns == 0 }

func build(pats []string) *Matcher {
	// Build the trie with map children, then flatten it.
	type node struct {
		children map[byte]int32
		depth    int32
		end      bool
	}
	nodes := []node{{children: map[byte]int32{}}}
	maxLen := 0
	for _, p := range pats {
		maxLen = max(maxLen, len(p))
		n := int32(0)
		for i := 0; i < len(p); i++ {
			c := p[i]
			next, ok := nodes[n].children[c]
			if !ok {
				next = int32(len(nodes))
				nodes = append(nodes, node{children: map[byte]int32{}, depth: nodes[n].depth + 1})
				nodes[n].children[c] = next
			}
			n = next
		}
		nodes[n].end = true
	}
	m := &Matcher{
		edgeStart: make([]int32, len(nodes)+1),
		fail:      make([]int32, len(nodes)),
		depth:     make([]int32, len(nodes)),
		match:     make([]int32, len(nodes)),
		patterns:  len(pats),
		maxLen:    maxLen,
	}
	for i, n := range nodes {
		m.depth[i] = n.depth
		m.edgeStart[i] = int32(len(m.edges))
		keys := make([]byte, 0, len(n.children))
		for c := range n.children {
			keys = append(keys, c)
		}
		slices.Sort(keys)
		for _, c := range keys {
			m.edges = append(m.edges, edge{c: c, next: n.children[c]})
		}
	}
	m.edgeStart[len(nodes)] = int32(len(m.edges))
	for c, next := range nodes[0].children {
		m.root[c] = next
	}
	// Failure links and match lengths, breadth first.
	queue := make([]int32, 0, len(nodes))
	for _, e := range m.edgesOf(0) {
		queue = append(queue, e.next)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if nodes[n].end {
			m.match[n] = m.depth[n]
		} else {
			m.match[n] = m.match[m.fail[n]]
		}
		for _, e := range m.edgesOf(n) {
			m.fail[e.next] = m.step(m.fail[n], e.c)
			queue = append(queue, e.next)
		}
	}
	return m
}

func (m *Matcher) edgesOf(n int32) []edge {
	return m.edges[m.edgeStart[n]:m.edgeStart[n+1]]
}

// child is the trie transition from n on c, 0 for none.
func (m *Matcher) child(n int32, c byte) int32 {
	if n == 0 {
		return m.root[c]
	}
	for _, e := range m.edges[m.edgeStart[n]:m.edgeStart[n+1]] {
		if e.c == c {
			return e.next
		}
		if e.c > c {
			break
		}
	}
	return 0
}

// step is the automaton's transition from n on c.
func (m *Matcher) step(n int32, c byte) int32 {
	for {
		if next := m.child(n, c); next != 0 || n == 0 {
			return next
		}
		n = m.fail[n]
	}
}

// Redact returns s with every match replaced by Mask (a whole string at once,
// e.g. a step's result message).
func (m *Matcher) Redact(s string) string {
	if m.Empty() || len(s) < MinLen {
		return s
	}
	var b strings.Builder
	w := NewWriter(&b, m)
	_, _ = io.WriteString(w, s)
	_ = w.Flush()
	return b.String()
}
