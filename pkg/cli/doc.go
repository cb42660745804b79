// Package cli is the home of kk's command tree: root assembles it, factory
// wires dependencies, and each noun (project, branch, stage, flow, run, job,
// agent, group, login, schema) has its own package with one file per verb.
// The tests of this package check the generated shell completions in
// completions/ against the command tree.
package cli
