package tools

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
)

// Artifacts is Kraken's `artifacts` tool: it stores files of the workspace
// in kkd (upload) or fetches files stored by earlier runs of the flow
// (download). Parameters:
//
//	action        upload (default) or download
//	source        a path or glob, or a list of them (required). Upload: files
//	              in the workspace (`*`, `?`, `[...]` within a path element,
//	              `**` across elements; a directory means every file below it).
//	              Download: globs over the stored artifacts' paths
//	destination   upload: path prefix in the store (default "."); download:
//	              directory in the workspace (default: cwd)
//	cwd           directory the sources are relative to (default: the workspace)
//	public        true: downloadable without a token (/public/artifacts/...)
//	report_entry  path (in the store) of the run's report entry page; implies public
//
// An uploaded file is stored under destination + its path relative to cwd.
// A download writes each matched artifact to destination/<its path>,
// atomically; when several runs of the flow stored the same path, the newest
// wins.
type Artifacts struct{}

type artifactsParams struct {
	download    bool
	sources     []string
	dest        string
	public      bool
	reportEntry string
}

func parseArtifacts(f map[string]any) (artifactsParams, error) {
	var p artifactsParams
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	action, _, err := String(f, "action")
	add(err)
	switch action {
	case "", "upload":
	case "download":
		p.download = true
	default:
		add(fmt.Errorf("action: want upload or download, got %q", action))
	}
	p.sources, err = StringList(f, "source")
	add(err)
	if err == nil && len(p.sources) == 0 {
		add(errors.New("source is required: a path, a glob or a list of them"))
	}
	p.dest, _, err = String(f, "destination")
	add(err)
	p.public, err = Bool(f, "public", false)
	add(err)
	switch v := f["report_entry"].(type) {
	case nil:
	case string:
		p.reportEntry = strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(v)), "/")
	default:
		add(fmt.Errorf("report_entry: want the path of the report's entry page, got %T", v))
	}
	_, _, err = String(f, "cwd")
	add(err)
	return p, errors.Join(errs...)
}

// Run uploads or downloads.
func (Artifacts) Run(ctx context.Context, env executor.Env, st Step) Result {
	const tool = "artifacts"
	p, err := parseArtifacts(st.Fields)
	if err != nil {
		return badParams(tool, err)
	}
	if err := st.needServices(tool); err != nil {
		return stepError(ctx, tool, err)
	}
	ws := NewWorkspace(env)
	dir, err := workspaceDirs(ws, st.Fields)
	if err != nil {
		return badParams(tool, err)
	}
	if p.download {
		return artifactsDownload(ctx, ws, dir, st, p)
	}
	return artifactsUpload(ctx, ws, dir, st, p)
}

// storePath joins the destination prefix and a file's relative path into a
// store path (forward slashes, no "..", no leading "/").
func storePath(dest, rel string) (string, error) {
	p := path.Clean(path.Join("/", filepath.ToSlash(dest), rel))
	p = strings.TrimPrefix(p, "/")
	if p == "" || p == "." {
		return "", fmt.Errorf("empty store path for %q", rel)
	}
	return p, nil
}

func artifactsUpload(ctx context.Context, ws Workspace, dir string, st Step, p artifactsParams) Result {
	const tool = "artifacts"
	if strings.Contains(filepath.ToSlash(p.dest), "..") {
		return badParams(tool, fmt.Errorf("destination %q: the store path must not contain \"..\"", p.dest))
	}
	var files []Match
	seen := map[string]bool{}
	for _, src := range p.sources {
		ms, err := ws.Glob(dir, "source", src)
		if err != nil {
			return badParams(tool, err)
		}
		if len(ms) == 0 {
			msg := fmt.Sprintf("source %q matches no file in %s", src, dir)
			fmt.Fprintln(st.Output, "artifacts: "+msg)
			return stepFailed(tool, msg)
		}
		for _, m := range ms {
			if !seen[m.Abs] {
				seen[m.Abs] = true
				files = append(files, m)
			}
		}
	}
	var total int64
	for _, m := range files {
		sp, err := storePath(p.dest, m.Rel)
		if err != nil {
			return stepError(ctx, tool, err)
		}
		up := ArtifactUpload{Path: sp, Size: m.Size, Public: p.public, ReportEntry: p.reportEntry != "" && sp == p.reportEntry}
		if up.ReportEntry {
			up.Public = true
		}
		// The size is the one Glob saw: a file that grows meanwhile is sent
		// as it was then; one that shrank fails the step.
		art, err := st.Services.UploadArtifact(ctx, up, func() (io.ReadCloser, error) {
			f, err := ws.Open(m.Abs)
			if err != nil {
				return nil, err
			}
			if fi, err := f.Stat(); err != nil || fi.Size() < up.Size {
				f.Close()
				return nil, fmt.Errorf("%s shrank while being uploaded", m.Abs)
			}
			return struct {
				io.Reader
				io.Closer
			}{io.LimitReader(f, up.Size), f}, nil
		})
		if err != nil {
			return stepError(ctx, tool, err)
		}
		total += art.Size
		line := fmt.Sprintf("%s %d", art.Path, art.Size)
		if art.URL != "" {
			line += " " + art.URL
		}
		fmt.Fprintln(st.Output, line)
	}
	if p.reportEntry != "" {
		found := false
		for _, m := range files {
			if sp, _ := storePath(p.dest, m.Rel); sp == p.reportEntry {
				found = true
			}
		}
		if !found {
			fmt.Fprintf(st.Output, "artifacts: warning: report_entry %q is not among the uploaded files\n", p.reportEntry)
		}
	}
	return Result{Status: ci.StepOK, Message: fmt.Sprintf("uploaded %d files, %d bytes", len(files), total)}
}

func artifactsDownload(ctx context.Context, ws Workspace, dir string, st Step, p artifactsParams) Result {
	const tool = "artifacts"
	destDir := dir
	if p.dest != "" {
		var err error
		if destDir, err = ws.Path(dir, "destination", p.dest); err != nil {
			return badParams(tool, err)
		}
	}
	arts, err := st.Services.ListArtifacts(ctx)
	if err != nil {
		return stepError(ctx, tool, err)
	}
	// Newest run first: the first artifact of a path wins.
	byPath := map[string]bool{}
	var picked []api.Artifact
	for _, src := range p.sources {
		pat := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(src)), "/")
		n := 0
		for _, a := range arts {
			if !MatchPath(pat, a.Path) && !strings.HasPrefix(a.Path, pat+"/") {
				continue
			}
			n++
			if !byPath[a.Path] {
				byPath[a.Path] = true
				picked = append(picked, a)
			}
		}
		if n == 0 {
			msg := fmt.Sprintf("source %q matches none of the %d artifacts of this flow", src, len(arts))
			fmt.Fprintln(st.Output, "artifacts: "+msg)
			return stepFailed(tool, msg)
		}
	}
	var total int64
	for _, a := range picked {
		target, err := ws.Path(destDir, "artifact path", filepath.FromSlash(a.Path))
		if err != nil || !strings.HasPrefix(target, destDir+string(filepath.Separator)) {
			return stepError(ctx, tool, fmt.Errorf("artifact path %q leaves the destination directory", a.Path))
		}
		err = st.Services.DownloadArtifact(ctx, a.ID, func(body io.Reader) error {
			return ws.WriteAtomic(target, 0o644, func(f *os.File) error {
				h := sha256.New()
				n, err := io.Copy(io.MultiWriter(f, h), body)
				if err != nil {
					return err
				}
				if a.Size > 0 && n != a.Size {
					return fmt.Errorf("artifact %s: got %d bytes, want %d", a.Path, n, a.Size)
				}
				if a.SHA256 != "" && !strings.EqualFold(a.SHA256, hex.EncodeToString(h.Sum(nil))) {
					return fmt.Errorf("artifact %s: checksum mismatch", a.Path)
				}
				return nil
			})
		})
		if err != nil {
			return stepError(ctx, tool, err)
		}
		total += a.Size
		rel, _ := filepath.Rel(ws.Dir, target)
		fmt.Fprintf(st.Output, "%s %d -> %s\n", a.Path, a.Size, rel)
	}
	return Result{Status: ci.StepOK, Message: fmt.Sprintf("downloaded %d files, %d bytes", len(picked), total)}
}
