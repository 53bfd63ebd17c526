package vaultfixture

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// Diff compares the current objects of bucket (a restore's target, say)
// with the recorded state at t and returns one line per difference, sorted;
// none when the bucket holds exactly State(t): every object of it with its
// bytes, ETag, size, Content-Type, Cache-Control, Content-Disposition,
// Content-Language, user metadata and tags, and no other key. It is an
// error if t is not one of Times.
func (f *Fixture) Diff(ctx context.Context, client s3x.Client, bucket string, t time.Time) ([]string, error) {
	st, ok := f.State(t)
	if !ok {
		return nil, fmt.Errorf("vault fixture: %s is not a recorded time (%v)", t.UTC().Format(time.RFC3339), f.Times)
	}
	have := map[string]bool{}
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("vault fixture: list s3://%s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			have[aws.ToString(o.Key)] = true
		}
	}
	var diffs []string
	for _, want := range st.Objects {
		if !have[want.Key] {
			diffs = append(diffs, fmt.Sprintf("%s: missing (want version %s, %d bytes)", want.Key, want.VersionID, want.Size))
			continue
		}
		delete(have, want.Key)
		d, err := f.diffObject(ctx, client, bucket, want)
		if err != nil {
			return nil, err
		}
		diffs = append(diffs, d...)
	}
	absent := map[string]bool{}
	for _, k := range st.Absent {
		absent[k] = true
	}
	for k := range have {
		if absent[k] {
			diffs = append(diffs, k+": present, absent at "+st.At.Format(time.RFC3339))
		} else {
			diffs = append(diffs, k+": present, a key the source never held")
		}
	}
	sort.Strings(diffs)
	return diffs, nil
}

func (f *Fixture) diffObject(ctx context.Context, c s3x.Client, bucket string, want Object) ([]string, error) {
	where := fmt.Sprintf("s3://%s/%s", bucket, want.Key)
	g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(want.Key)})
	if err != nil {
		return nil, fmt.Errorf("vault fixture: get %s: %w", where, err)
	}
	body, err := io.ReadAll(g.Body)
	g.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("vault fixture: read %s: %w", where, err)
	}
	tags, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(want.Key), VersionId: g.VersionId})
	if err != nil {
		return nil, fmt.Errorf("vault fixture: tags of %s: %w", where, err)
	}
	wantBody, err := f.Body(want.File)
	if err != nil {
		return nil, err
	}
	var diffs []string
	add := func(name string, have, wantV any) {
		diffs = append(diffs, fmt.Sprintf("%s: %s %q, want %q", want.Key, name, fmt.Sprint(have), fmt.Sprint(wantV)))
	}
	if !bytes.Equal(body, wantBody) {
		diffs = append(diffs, fmt.Sprintf("%s: bytes differ (%d bytes, want %d)", want.Key, len(body), len(wantBody)))
	}
	if etag := s3x.TrimETag(aws.ToString(g.ETag)); etag != want.ETag {
		add("ETag", etag, want.ETag)
	}
	if size := aws.ToInt64(g.ContentLength); size != want.Size {
		add("size", size, want.Size)
	}
	for _, h := range []struct{ name, have, want string }{
		{"Content-Type", aws.ToString(g.ContentType), want.ContentType},
		{"Cache-Control", aws.ToString(g.CacheControl), want.CacheControl},
		{"Content-Disposition", aws.ToString(g.ContentDisposition), want.ContentDisposition},
		{"Content-Language", aws.ToString(g.ContentLanguage), want.ContentLanguage},
	} {
		if h.have != h.want {
			add(h.name, h.have, h.want)
		}
	}
	if meta := lower(g.Metadata); !maps.Equal(meta, lower(want.Metadata)) {
		add("user metadata", meta, want.Metadata)
	}
	haveTags := map[string]string{}
	for _, t := range tags.TagSet {
		haveTags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	if !maps.Equal(haveTags, want.Tags) {
		add("tags", haveTags, want.Tags)
	}
	return diffs, nil
}

// lower returns m with its keys in lower case (S3's user metadata names
// are case-insensitive), empty rather than nil.
func lower(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}
