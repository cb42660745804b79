package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/kraken-go/kk/pkg/ci"
)

// S3PartSize is the part size of uploads of unknown length: minio-go buffers
// one part in memory per upload, so it bounds the memory an upload takes.
// With S3's limit of 10000 parts it allows blobs of up to 160 GiB.
const S3PartSize = 16 << 20

// S3Config configures an S3 store.
type S3Config struct {
	Endpoint  string // host[:port]
	Bucket    string
	Prefix    string // optional key prefix inside the bucket, without slashes at the ends
	AccessKey string
	SecretKey string
	Region    string
	Secure    bool // https
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
}

// S3Store keeps blobs in an S3 bucket (MinIO, AWS S3, ...).
type S3Store struct {
	c   *minio.Client
	cfg S3Config
}

var _ Store = (*S3Store)(nil)

// parseS3 reads s3://[ACCESS:SECRET@]HOST[:PORT]/BUCKET[/PREFIX][?secure=&region=].
func parseS3(u *url.URL, env Env) (S3Config, error) {
	cfg := S3Config{Endpoint: u.Host, Secure: true}
	if cfg.Endpoint == "" {
		return cfg, fmt.Errorf("no host: use s3://HOST[:PORT]/BUCKET: %w", ci.ErrInvalid)
	}
	path := strings.Trim(u.Path, "/")
	bucket, prefix, _ := strings.Cut(path, "/")
	if bucket == "" {
		return cfg, fmt.Errorf("no bucket: use s3://HOST[:PORT]/BUCKET: %w", ci.ErrInvalid)
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return cfg, fmt.Errorf("bucket %q: %v: %w", bucket, err, ci.ErrInvalid)
	}
	cfg.Bucket = bucket
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return cfg, fmt.Errorf("key prefix %q: %w", prefix, err)
		}
		cfg.Prefix = prefix
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "secure":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, fmt.Errorf("secure=%q: use true or false: %w", v, ci.ErrInvalid)
			}
			cfg.Secure = b
		case "region":
			cfg.Region = v
		default:
			return cfg, fmt.Errorf("unknown parameter %q: the parameters are secure and region: %w", k, ci.ErrInvalid)
		}
	}
	if u.User != nil {
		cfg.AccessKey = u.User.Username()
		cfg.SecretKey, _ = u.User.Password()
	}
	switch {
	case cfg.AccessKey != "" || cfg.SecretKey != "":
	case env("KKD_S3_ACCESS_KEY") != "" || env("KKD_S3_SECRET_KEY") != "":
		cfg.AccessKey, cfg.SecretKey = env("KKD_S3_ACCESS_KEY"), env("KKD_S3_SECRET_KEY")
	default:
		cfg.AccessKey, cfg.SecretKey = env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return cfg, fmt.Errorf("no S3 credentials (access key and secret key): put them in the URL (s3://ACCESS:SECRET@HOST/BUCKET) or set KKD_S3_ACCESS_KEY and KKD_S3_SECRET_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): %w", ci.ErrInvalid)
	}
	return cfg, nil
}

// OpenS3 connects to the bucket, creating it when it does not exist.
func OpenS3(ctx context.Context, cfg S3Config) (*S3Store, error) {
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.Secure,
		Region:    cfg.Region,
		Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", cfg.Endpoint, err)
	}
	s := &S3Store{c: c, cfg: cfg}
	ok, err := c.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("%s: check bucket: %w (is the endpoint reachable, secure=%t right and are the credentials valid?)", s, err, cfg.Secure)
	}
	if !ok {
		err := c.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		if code := minio.ToErrorResponse(err).Code; err != nil && code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			return nil, fmt.Errorf("%s: create bucket: %w", s, err)
		}
	}
	return s, nil
}

// String implements Store.
func (s *S3Store) String() string {
	scheme := "https"
	if !s.cfg.Secure {
		scheme = "http"
	}
	p := s.cfg.Bucket
	if s.cfg.Prefix != "" {
		p += "/" + s.cfg.Prefix
	}
	return fmt.Sprintf("s3 %s://%s/%s", scheme, s.cfg.Endpoint, p)
}

func (s *S3Store) object(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if s.cfg.Prefix != "" {
		return s.cfg.Prefix + "/" + key, nil
	}
	return key, nil
}

// s3Err maps a missing object to ci.ErrNotFound.
func s3Err(err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NotFound":
		return fmt.Errorf("%w: %w", err, ci.ErrNotFound)
	}
	return err
}

// Put implements Store. Objects of unknown size are sent as a multipart
// upload of S3PartSize parts; an error aborts it, so nothing is stored.
func (s *S3Store) Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	obj, err := s.object(key)
	if err != nil {
		return Info{}, fmt.Errorf("put blob: %w", err)
	}
	sr := newSizedReader(r, size)
	ui, err := s.c.PutObject(ctx, s.cfg.Bucket, obj, sr, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    S3PartSize,
		NumThreads:  1,
	})
	if err != nil {
		return Info{}, fmt.Errorf("put blob %s: %w", key, err)
	}
	if size >= 0 {
		// minio-go reads exactly size bytes: a longer reader is only seen
		// now, after the object was written. It is removed again (S3 has
		// no rename to make this atomic; the key's old blob is lost too).
		if _, err := sr.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			_ = s.c.RemoveObject(context.WithoutCancel(ctx), s.cfg.Bucket, obj, minio.RemoveObjectOptions{})
			return Info{}, fmt.Errorf("put blob %s: %w", key, err)
		}
	}
	return Info{Key: key, Size: ui.Size, Modified: ui.LastModified.UTC()}, nil
}

// Get implements Store.
func (s *S3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, fmt.Errorf("get blob: %w", err)
	}
	o, err := s.c.GetObject(ctx, s.cfg.Bucket, obj, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", key, s3Err(err))
	}
	// GetObject is lazy: Stat sends the request, so a missing key fails here.
	if _, err := o.Stat(); err != nil {
		_ = o.Close()
		return nil, fmt.Errorf("get blob %s: %w", key, s3Err(err))
	}
	return o, nil
}

// Stat implements Store.
func (s *S3Store) Stat(ctx context.Context, key string) (Info, error) {
	obj, err := s.object(key)
	if err != nil {
		return Info{}, fmt.Errorf("stat blob: %w", err)
	}
	oi, err := s.c.StatObject(ctx, s.cfg.Bucket, obj, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("stat blob %s: %w", key, s3Err(err))
	}
	return Info{Key: key, Size: oi.Size, Modified: oi.LastModified.UTC()}, nil
}

// Delete implements Store.
func (s *S3Store) Delete(ctx context.Context, key string) error {
	obj, err := s.object(key)
	if err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	err = s.c.RemoveObject(ctx, s.cfg.Bucket, obj, minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(s3Err(err), ci.ErrNotFound) {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	return nil
}

// List implements Store.
func (s *S3Store) List(ctx context.Context, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		if err := validatePrefix(prefix); err != nil {
			yield(Info{}, err)
			return
		}
		full := prefix
		if s.cfg.Prefix != "" {
			full = s.cfg.Prefix + "/" + prefix
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // an early stop ends the listing goroutine
		for oi := range s.c.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true}) {
			if oi.Err != nil {
				yield(Info{}, fmt.Errorf("list blobs %q: %w", prefix, oi.Err))
				return
			}
			key := oi.Key
			if s.cfg.Prefix != "" {
				key = strings.TrimPrefix(key, s.cfg.Prefix+"/")
			}
			if !yield(Info{Key: key, Size: oi.Size, Modified: oi.LastModified.UTC()}, nil) {
				return
			}
		}
	}
}
