package s3x

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// parsedPage is a ListObjectVersions page read from the raw response in
// one pass: entries in the server's order and the pagination fields.
type parsedPage struct {
	ok                bool
	entries           []Entry
	truncated         bool
	nextKey, nextVers string
}

// emptyListing replaces a parsed body, so that the SDK's deserializer,
// which would decode every entry a second time (the larger part of a
// listing's client CPU), has nothing to do.
var emptyListing = []byte(`<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></ListVersionsResult>`)

// parseBody returns a per-call option that reads a ListObjectVersions
// response itself (parseListing) and hands the SDK an empty result. A body
// it cannot read that way is left to the SDK, page.ok stays false, and
// raw keeps a copy of it (the lister reorders the SDK's result from it).
func parseBody(page *parsedPage, raw *bytes.Buffer) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("bucketvaultParseListing",
				func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
					out, md, err := next.HandleDeserialize(ctx, in)
					if err != nil {
						return out, md, err
					}
					resp, ok := out.RawResponse.(*smithyhttp.Response)
					if !ok || resp.Body == nil || resp.StatusCode != 200 {
						return out, md, err
					}
					body, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr != nil {
						return out, md, rerr
					}
					if p, perr := parseListing(body); perr == nil {
						*page = p
						body = emptyListing
					} else {
						raw.Reset()
						raw.Write(body)
					}
					resp.Body = io.NopCloser(bytes.NewReader(body))
					return out, md, nil
				}), middleware.After)
		})
	}
}

// parseListing reads a ListVersionsResult: each <Version> and
// <DeleteMarker> in document order, and the pagination fields. A listing
// with an EncodingType (keys URL-encoded) is refused: the SDK decodes it.
func parseListing(body []byte) (parsedPage, error) {
	var p parsedPage
	dec := xml.NewDecoder(bytes.NewReader(body))
	var (
		depth int
		cur   *Entry // inside a Version or DeleteMarker
		field string // the element whose text is being read
		text  []byte
	)
	for {
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return p, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && (t.Name.Local == "Version" || t.Name.Local == "DeleteMarker"):
				p.entries = append(p.entries, Entry{IsDeleteMarker: t.Name.Local == "DeleteMarker"})
				cur = &p.entries[len(p.entries)-1]
			case depth == 2 || depth == 3 && cur != nil:
				field, text = t.Name.Local, text[:0]
			}
		case xml.CharData:
			if field != "" {
				text = append(text, t...)
			}
		case xml.EndElement:
			if field != "" && t.Name.Local == field {
				if err := p.set(cur, field, string(text)); err != nil {
					return p, err
				}
				field = ""
			}
			if depth == 2 && cur != nil && (t.Name.Local == "Version" || t.Name.Local == "DeleteMarker") {
				if cur.VersionID == "" {
					cur.VersionID = "null"
				}
				cur = nil
			}
			depth--
		}
	}
	p.ok = true
	return p, nil
}

// errEncoded says a listing's keys are encoded (EncodingType).
type errEncoded struct{}

func (errEncoded) Error() string { return "listing keys are encoded" }

func (p *parsedPage) set(e *Entry, field, v string) error {
	if e == nil {
		switch field {
		case "IsTruncated":
			p.truncated = v == "true"
		case "NextKeyMarker":
			p.nextKey = v
		case "NextVersionIdMarker":
			p.nextVers = v
		case "EncodingType":
			return errEncoded{}
		}
		return nil
	}
	if e.IsDeleteMarker && field != "Key" && field != "VersionId" && field != "IsLatest" && field != "LastModified" {
		return nil // what the SDK keeps of a marker (some servers send more)
	}
	switch field {
	case "Key":
		e.Key = v
	case "VersionId":
		e.VersionID = v
	case "IsLatest":
		e.IsLatest = v == "true"
	case "LastModified":
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return err
		}
		e.LastModified = t
	case "ETag":
		e.ETag = TrimETag(v)
	case "Size":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return err
		}
		e.Size = n
	case "StorageClass":
		e.StorageClass = v
	case "ChecksumAlgorithm":
		if e.ChecksumAlgo == "" {
			e.ChecksumAlgo = v
		}
	}
	return nil
}
