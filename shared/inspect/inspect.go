// Package inspect reads what a bucket holds now, key by key (content
// digest, metadata, tags), and compares two such readings. The demo and the
// tests use it to check a restore against the bucket it restores; it holds
// a whole reading in memory, so it is for test-sized buckets, not for
// production-scale validation.
package inspect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Object is what a restore must bring back of one key.
type Object struct {
	SHA256             string            `json:"sha256"`
	Size               int64             `json:"size"`
	ContentType        string            `json:"contentType,omitempty"`
	ContentEncoding    string            `json:"contentEncoding,omitempty"`
	ContentDisposition string            `json:"contentDisposition,omitempty"`
	ContentLanguage    string            `json:"contentLanguage,omitempty"`
	CacheControl       string            `json:"cacheControl,omitempty"`
	User               map[string]string `json:"user,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
}

// Capture reads every current object of bucket under prefix.
func Capture(ctx context.Context, c s3x.Client, bucket, prefix string) (map[string]Object, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	objs := make([]Object, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, k := range keys {
		g.Go(func() error {
			o, err := read(gctx, c, bucket, k)
			objs[i] = o
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]Object, len(keys))
	for i, k := range keys {
		out[k] = objs[i]
	}
	return out, nil
}

func read(ctx context.Context, c s3x.Client, bucket, key string) (Object, error) {
	g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return Object{}, fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	defer g.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, g.Body)
	if err != nil {
		return Object{}, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	o := Object{
		SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, ContentType: aws.ToString(g.ContentType),
		ContentEncoding: aws.ToString(g.ContentEncoding), ContentDisposition: aws.ToString(g.ContentDisposition),
		ContentLanguage: aws.ToString(g.ContentLanguage), CacheControl: aws.ToString(g.CacheControl),
	}
	if len(g.Metadata) > 0 {
		o.User = g.Metadata
	}
	tg, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: g.VersionId})
	if err != nil && !s3x.IsNotImplemented(err) {
		return Object{}, fmt.Errorf("tags of s3://%s/%s: %w", bucket, key, err)
	}
	if err == nil && len(tg.TagSet) > 0 {
		o.Tags = map[string]string{}
		for _, t := range tg.TagSet {
			o.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return o, nil
}

// Diff lists, key by key in order, how got differs from want.
func Diff(want, got map[string]Object) []string {
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var out []string
	for _, k := range sorted {
		w, inW := want[k]
		g, inG := got[k]
		switch {
		case !inG:
			out = append(out, fmt.Sprintf("%s: missing", k))
		case !inW:
			out = append(out, fmt.Sprintf("%s: should not exist", k))
		case !Equal(w, g):
			out = append(out, fmt.Sprintf("%s: differs: want %+v, got %+v", k, w, g))
		}
	}
	return out
}

// Equal reports whether two objects are the same content, metadata and tags.
func Equal(a, b Object) bool {
	return a.SHA256 == b.SHA256 && a.Size == b.Size && a.ContentType == b.ContentType &&
		a.ContentEncoding == b.ContentEncoding && a.ContentDisposition == b.ContentDisposition &&
		a.ContentLanguage == b.ContentLanguage && a.CacheControl == b.CacheControl &&
		maps.Equal(a.User, b.User) && maps.Equal(a.Tags, b.Tags)
}
