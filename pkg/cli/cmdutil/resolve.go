package cmdutil

import (
	"context"
	"fmt"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/client"
)

// ResolveBranch looks up the branch a PROJECT/BRANCH reference names.
func ResolveBranch(ctx context.Context, c *client.Client, ref BranchRef) (ci.Branch, error) {
	b, err := c.GetBranch(ctx, ref.Project, ref.Branch)
	if err != nil {
		return ci.Branch{}, fmt.Errorf("branch %s: %w", ref, err)
	}
	return b, nil
}
