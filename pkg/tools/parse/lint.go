package parse

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
)

// jsonArray positions a decoder on the elements of the first JSON array in r,
// skipping any text before it (tools print banners before their report).
func jsonArray(r io.Reader) (*json.Decoder, error) {
	br := bufio.NewReader(r)
	for {
		b, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no JSON array in the output")
		}
		if err != nil {
			return nil, err
		}
		if b == '[' {
			if err := br.UnreadByte(); err != nil {
				return nil, err
			}
			break
		}
	}
	d := json.NewDecoder(br)
	if _, err := d.Token(); err != nil { // [
		return nil, fmt.Errorf("read JSON array: %w", err)
	}
	return d, nil
}

// pylintMessage is one message of `pylint -f json`.
type pylintMessage struct {
	Type    string      `json:"type"`
	Module  string      `json:"module"`
	Obj     string      `json:"obj"`
	Line    json.Number `json:"line"`
	Column  json.Number `json:"column"`
	Path    string      `json:"path"`
	Symbol  string      `json:"symbol"`
	Message string      `json:"message"`
	ID      string      `json:"message-id"`
}

func intOf(n json.Number) int {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > math.MaxInt32 {
		return 0
	}
	return int(f)
}

// Pylint reads the JSON report of pylint (-f json) and calls emit for each
// message, as it is read.
func Pylint(r io.Reader, emit func(api.Issue) error) error {
	d, err := jsonArray(r)
	if err != nil {
		return fmt.Errorf("pylint report: %w", err)
	}
	for d.More() {
		var m pylintMessage
		if err := d.Decode(&m); err != nil {
			return fmt.Errorf("pylint report: %w", err)
		}
		is := api.Issue{Path: m.Path, Line: intOf(m.Line), Column: intOf(m.Column), Type: m.Type,
			Symbol: m.Symbol, Message: clip(m.Message)}
		if is.Path == "" {
			is.Path = m.Module
		}
		if is.Symbol == "" {
			is.Symbol = m.ID
		}
		if err := emit(is); err != nil {
			return err
		}
	}
	return nil
}

// ClocLanguage is one language of a cloc report.
type ClocLanguage struct {
	Name                        string
	Files, Blank, Comment, Code int64
}

// Cloc reads the JSON report of `cloc --json`: one entry per language
// (header and SUM left out), sorted by name.
func Cloc(r io.Reader) ([]ClocLanguage, error) {
	br := bufio.NewReader(r)
	// Skip anything before the object (progress lines).
	for {
		b, err := br.Peek(1)
		if err != nil {
			return nil, errors.New("cloc report: no JSON object in the output")
		}
		if b[0] == '{' {
			break
		}
		if _, err := br.ReadByte(); err != nil {
			return nil, err
		}
	}
	var doc map[string]json.RawMessage
	if err := json.NewDecoder(br).Decode(&doc); err != nil {
		return nil, fmt.Errorf("cloc report: %w", err)
	}
	var out []ClocLanguage
	for name, raw := range doc {
		if name == "header" || name == "SUM" {
			continue
		}
		var v struct {
			NFiles  json.Number `json:"nFiles"`
			Blank   json.Number `json:"blank"`
			Comment json.Number `json:"comment"`
			Code    json.Number `json:"code"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("cloc report: language %s: %w", name, err)
		}
		out = append(out, ClocLanguage{Name: name, Files: int64(intOf(v.NFiles)), Blank: int64(intOf(v.Blank)),
			Comment: int64(intOf(v.Comment)), Code: int64(intOf(v.Code))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ngFile is one file of ng lint's JSON report: ESLint's format (filePath,
// messages) or TSLint's (one failure per element: name, failure, ruleName,
// ruleSeverity, startPosition).
type ngFile struct {
	// ESLint
	FilePath string `json:"filePath"`
	Messages []struct {
		RuleID   *string     `json:"ruleId"`
		Severity json.Number `json:"severity"`
		Message  string      `json:"message"`
		Line     json.Number `json:"line"`
		Column   json.Number `json:"column"`
	} `json:"messages"`
	// TSLint
	Name          string `json:"name"`
	Failure       string `json:"failure"`
	RuleName      string `json:"ruleName"`
	RuleSeverity  string `json:"ruleSeverity"`
	StartPosition struct {
		Line      json.Number `json:"line"`
		Character json.Number `json:"character"`
	} `json:"startPosition"`
}

// NgLint reads the JSON report of `ng lint --format json` (ESLint or TSLint
// builders) and calls emit for each finding. Arrays of several projects
// printed one after the other are all read.
func NgLint(r io.Reader, emit func(api.Issue) error) error {
	d, err := jsonArray(r)
	if err != nil {
		return fmt.Errorf("ng lint report: %w", err)
	}
	for d.More() {
		var f ngFile
		if err := d.Decode(&f); err != nil {
			return fmt.Errorf("ng lint report: %w", err)
		}
		if f.FilePath != "" || len(f.Messages) > 0 {
			for _, m := range f.Messages {
				sev := "warning"
				if intOf(m.Severity) >= 2 {
					sev = "error"
				}
				rule := ""
				if m.RuleID != nil {
					rule = *m.RuleID
				}
				if err := emit(api.Issue{Path: f.FilePath, Line: intOf(m.Line), Column: intOf(m.Column),
					Type: sev, Symbol: rule, Message: clip(m.Message)}); err != nil {
					return err
				}
			}
			continue
		}
		if f.Name != "" || f.Failure != "" {
			// TSLint positions are 0-based.
			is := api.Issue{Path: f.Name, Line: intOf(f.StartPosition.Line) + 1, Column: intOf(f.StartPosition.Character) + 1,
				Type: strings.ToLower(f.RuleSeverity), Symbol: f.RuleName, Message: clip(f.Failure)}
			if is.Type == "" {
				is.Type = "warning"
			}
			if err := emit(is); err != nil {
				return err
			}
		}
	}
	return nil
}
