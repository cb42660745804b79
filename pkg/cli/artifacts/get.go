package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kraken-go/kk/pkg/cli/cmdutil"
	"github.com/kraken-go/kk/pkg/cli/factory"
	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/client"
)

// GetOptions are the inputs of `kk artifacts get`.
type GetOptions struct {
	IO     *iostreams.IOStreams
	Client func() (*client.Client, error)

	ID int64
	// Output is the file to write; "" for the artifact's base name in the
	// current directory; "-" for stdout.
	Output string
	Force  bool
}

// NewCmdGet returns `kk artifacts get ID [-O FILE] [--force]`.
func NewCmdGet(f *factory.Factory, runF func(context.Context, *GetOptions) error) *cobra.Command {
	opts := &GetOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Download an artifact",
		Long: `Download an artifact to a file: by default the artifact's base name in the
current directory, or the file given with -O (-O - writes to stdout). An
existing file is kept unless --force is given. The download is checked
against the artifact's sha256 and the file appears only once it is complete.`,
		Example: "  kk artifacts get 56\n  kk artifacts get 56 -O /tmp/app.tar.gz\n  kk artifacts get 56 -O - | tar tz",
		Args:    cmdutil.ExactArgs(1, "missing artifact id: kk artifacts get ID (find ids with `kk artifacts list FLOW`)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := cmdutil.ParseID("artifact", args[0], "see `kk artifacts list FLOW`")
			if err != nil {
				return err
			}
			opts.ID = id
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return getRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output-file", "O", "", "write to this file (- for stdout; default: the artifact's base name in the current directory)")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "overwrite an existing file")
	return cmd
}

func getRun(ctx context.Context, opts *GetOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	a, err := c.GetArtifact(ctx, opts.ID)
	if err != nil {
		return fmt.Errorf("artifact %d: %w", opts.ID, err)
	}
	if opts.Output == "-" {
		return download(ctx, c, opts.ID, a.SHA256, opts.IO.Out)
	}
	dest := opts.Output
	if dest == "" {
		dest = path.Base(a.Path)
	}
	if fi, err := os.Stat(dest); err == nil {
		if fi.IsDir() {
			dest = filepath.Join(dest, path.Base(a.Path))
		}
	}
	if !opts.Force {
		if _, err := os.Lstat(dest); err == nil {
			return fmt.Errorf("%s exists: pass --force to overwrite it, or -O FILE to save elsewhere", dest)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".kk-*")
	if err != nil {
		return fmt.Errorf("save artifact %d: %w", opts.ID, err)
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := download(ctx, c, opts.ID, a.SHA256, tmp); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save artifact %d: %w", opts.ID, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("save artifact %d: %w", opts.ID, err)
	}
	if !opts.Force {
		// Keep a file that appeared meanwhile: link fails when dest exists.
		if err := os.Link(tmp.Name(), dest); err != nil {
			return fmt.Errorf("save artifact %d to %s: %w (pass --force to overwrite)", opts.ID, dest, err)
		}
		_ = os.Remove(tmp.Name())
	} else if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("save artifact %d to %s: %w", opts.ID, dest, err)
	}
	done = true
	fmt.Fprintf(opts.IO.ErrOut, "saved artifact %d (%s, %s) to %s\n", a.ID, a.Path, Size(a.Size), dest)
	return nil
}

// download streams the artifact's bytes to w and checks their sha256.
func download(ctx context.Context, c *client.Client, id int64, want string, w io.Writer) error {
	body, err := c.ArtifactContent(ctx, id)
	if err != nil {
		return fmt.Errorf("download artifact %d: %w", id, err)
	}
	defer body.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), body); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("download artifact %d: interrupted: %w (run the command again)", id, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want {
		return fmt.Errorf("download artifact %d: the bytes received have sha256 %s, the artifact %s: run the command again", id, got, want)
	}
	return nil
}
