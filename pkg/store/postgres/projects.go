package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
)

// Projects.

const projectCols = `id, name, description, created`

func scanProject(sc pgx.Row) (ci.Project, error) {
	var p ci.Project
	if err := sc.Scan(&p.ID, &p.Name, &p.Description, &p.Created); err != nil {
		return ci.Project{}, err
	}
	return p, nil
}

// CreateProject inserts p and sets p.ID and p.Created.
func (s *Store) CreateProject(ctx context.Context, p *ci.Project) error {
	if err := checkName("project", p.Name); err != nil {
		return fmt.Errorf("create project: %w", err)
	}
	now := s.now()
	err := s.write(ctx, func(tx querier) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO projects (name, description, created) VALUES ($1, $2, $3) RETURNING id`,
			p.Name, p.Description, now).Scan(&p.ID)
		if isUnique(err) {
			return fmt.Errorf("a project with this name exists: %w", ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create project %q: %w", p.Name, err)
	}
	p.Created = now
	return nil
}

// GetProject returns the project with this ID.
func (s *Store) GetProject(ctx context.Context, id int64) (ci.Project, error) {
	p, err := scanProject(s.q().QueryRow(ctx, `SELECT `+projectCols+` FROM projects WHERE id = $1`, id))
	if err != nil {
		return ci.Project{}, fmt.Errorf("get project: %w", notFound(err, "project", id))
	}
	return p, nil
}

// GetProjectByName returns the project with this name.
func (s *Store) GetProjectByName(ctx context.Context, name string) (ci.Project, error) {
	p, err := scanProject(s.q().QueryRow(ctx, `SELECT `+projectCols+` FROM projects WHERE name = $1`, name))
	if err != nil {
		return ci.Project{}, fmt.Errorf("get project: %w", notFound(err, "project", fmt.Sprintf("%q", name)))
	}
	return p, nil
}

// ListProjects returns all projects ordered by name.
func (s *Store) ListProjects(ctx context.Context) ([]ci.Project, error) {
	out, err := queryAll(ctx, s, s.q(), scanProject, `SELECT `+projectCols+` FROM projects ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return out, nil
}

// DeleteProject deletes the project and, by cascade, everything below it.
func (s *Store) DeleteProject(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `DELETE FROM projects WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return mustAffect(tag, "project", id)
	})
	if err != nil {
		return fmt.Errorf("delete project: %w", err)
	}
	return nil
}

// Branches.

const branchCols = `id, project_id, name, repo_branch, env, keep_flows_days, keep_logs_days, keep_artifacts_days, created`

func scanBranch(sc pgx.Row) (ci.Branch, error) {
	var b ci.Branch
	var env string
	if err := sc.Scan(&b.ID, &b.ProjectID, &b.Name, &b.RepoBranch, &env, &b.Retention.KeepFlowsDays,
		&b.Retention.KeepLogsDays, &b.Retention.KeepArtifactsDays, &b.Created); err != nil {
		return ci.Branch{}, err
	}
	m, err := decodeMap[string](env)
	if err != nil {
		return ci.Branch{}, fmt.Errorf("branch %d env: %w", b.ID, err)
	}
	b.Env = m
	return b, nil
}

// CreateBranch inserts b and sets b.ID and b.Created.
func (s *Store) CreateBranch(ctx context.Context, b *ci.Branch) error {
	if err := checkName("branch", b.Name); err != nil {
		return fmt.Errorf("create branch: %w", err)
	}
	env, err := encodeMap(b.Env)
	if err != nil {
		return fmt.Errorf("create branch %q: env: %w", b.Name, err)
	}
	now := s.now()
	err = s.write(ctx, func(tx querier) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO branches (project_id, name, repo_branch, env, created) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			b.ProjectID, b.Name, b.RepoBranch, env, now).Scan(&b.ID)
		switch {
		case isForeignKey(err):
			return fmt.Errorf("project %d: %w", b.ProjectID, ci.ErrNotFound)
		case isUnique(err):
			return fmt.Errorf("the project has a branch with this name: %w", ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create branch %q: %w", b.Name, err)
	}
	b.Created = now
	return nil
}

// GetBranch returns the branch with this ID.
func (s *Store) GetBranch(ctx context.Context, id int64) (ci.Branch, error) {
	b, err := scanBranch(s.q().QueryRow(ctx, `SELECT `+branchCols+` FROM branches WHERE id = $1`, id))
	if err != nil {
		return ci.Branch{}, fmt.Errorf("get branch: %w", notFound(err, "branch", id))
	}
	return b, nil
}

// GetBranchByName returns the project's branch with this name.
func (s *Store) GetBranchByName(ctx context.Context, projectID int64, name string) (ci.Branch, error) {
	b, err := scanBranch(s.q().QueryRow(ctx,
		`SELECT `+branchCols+` FROM branches WHERE project_id = $1 AND name = $2`, projectID, name))
	if err != nil {
		return ci.Branch{}, fmt.Errorf("get branch: %w",
			notFound(err, "branch", fmt.Sprintf("%q of project %d", name, projectID)))
	}
	return b, nil
}

// ListBranches returns the project's branches ordered by name.
func (s *Store) ListBranches(ctx context.Context, projectID int64) ([]ci.Branch, error) {
	out, err := queryAll(ctx, s, s.q(), scanBranch,
		`SELECT `+branchCols+` FROM branches WHERE project_id = $1 ORDER BY name`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list branches of project %d: %w", projectID, err)
	}
	return out, nil
}

// DeleteBranch deletes the branch and, by cascade, everything below it.
func (s *Store) DeleteBranch(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `DELETE FROM branches WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return mustAffect(tag, "branch", id)
	})
	if err != nil {
		return fmt.Errorf("delete branch: %w", err)
	}
	return nil
}

// Stages.

const stageCols = `id, branch_id, name, enabled, code, schema::text, parent, repo::text, created, updated`

func scanStage(sc pgx.Row) (ci.Stage, error) {
	var st ci.Stage
	var schema, repo *string
	if err := sc.Scan(&st.ID, &st.BranchID, &st.Name, &st.Enabled, &st.Code, &schema, &st.Parent,
		&repo, &st.Created, &st.Updated); err != nil {
		return ci.Stage{}, err
	}
	if repo != nil {
		r, err := decodeRepo(*repo)
		if err != nil {
			return ci.Stage{}, fmt.Errorf("stage %d: %w", st.ID, err)
		}
		st.Repo = r
	}
	st.Schema = decodeRaw(schema)
	return st, nil
}

// PutStage inserts the stage or replaces Code, Schema, Parent and Enabled of the
// branch's stage of the same name. It sets s.ID, s.Created and s.Updated.
func (s *Store) PutStage(ctx context.Context, st *ci.Stage) error {
	if err := checkName("stage", st.Name); err != nil {
		return fmt.Errorf("put stage: %w", err)
	}
	schema, err := encodeRaw("stage schema", st.Schema)
	if err != nil {
		return fmt.Errorf("put stage %q: %w", st.Name, err)
	}
	repo, err := encodeRepo(st.Repo)
	if err != nil {
		return fmt.Errorf("put stage %q: %w", st.Name, err)
	}
	now := s.now()
	var created, updated = now, now
	err = s.write(ctx, func(tx querier) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO stages (branch_id, name, enabled, code, schema, parent, repo, created, updated)
			VALUES ($1, $2, $3, $4, $5::json, $6, $8::json, $7, $7)
			ON CONFLICT (branch_id, name) DO UPDATE SET
				enabled = excluded.enabled, code = excluded.code, schema = excluded.schema,
				parent = excluded.parent, repo = excluded.repo, updated = excluded.updated
			RETURNING id, created`,
			st.BranchID, st.Name, st.Enabled, st.Code, schema, st.Parent, now, repo,
		).Scan(&st.ID, &created)
		if isForeignKey(err) {
			return fmt.Errorf("branch %d: %w", st.BranchID, ci.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("put stage %q: %w", st.Name, err)
	}
	st.Created = created
	st.Updated = updated
	return nil
}

// GetStage returns the stage with this ID.
func (s *Store) GetStage(ctx context.Context, id int64) (ci.Stage, error) {
	st, err := scanStage(s.q().QueryRow(ctx, `SELECT `+stageCols+` FROM stages WHERE id = $1`, id))
	if err != nil {
		return ci.Stage{}, fmt.Errorf("get stage: %w", notFound(err, "stage", id))
	}
	return st, nil
}

// GetStageByName returns the branch's stage with this name.
func (s *Store) GetStageByName(ctx context.Context, branchID int64, name string) (ci.Stage, error) {
	st, err := scanStage(s.q().QueryRow(ctx,
		`SELECT `+stageCols+` FROM stages WHERE branch_id = $1 AND name = $2`, branchID, name))
	if err != nil {
		return ci.Stage{}, fmt.Errorf("get stage: %w",
			notFound(err, "stage", fmt.Sprintf("%q of branch %d", name, branchID)))
	}
	return st, nil
}

// ListStages returns the branch's stages ordered by name.
func (s *Store) ListStages(ctx context.Context, branchID int64) ([]ci.Stage, error) {
	out, err := queryAll(ctx, s, s.q(), scanStage,
		`SELECT `+stageCols+` FROM stages WHERE branch_id = $1 ORDER BY name`, branchID)
	if err != nil {
		return nil, fmt.Errorf("list stages of branch %d: %w", branchID, err)
	}
	return out, nil
}

// DeleteStage deletes the stage. Its runs keep their StageName; their StageID
// becomes 0.
func (s *Store) DeleteStage(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `DELETE FROM stages WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return mustAffect(tag, "stage", id)
	})
	if err != nil {
		return fmt.Errorf("delete stage: %w", err)
	}
	return nil
}
