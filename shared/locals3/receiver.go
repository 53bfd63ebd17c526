package locals3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// maxBody bounds one webhook request body. MinIO sends one record per POST
// (a few KiB); versitygw sends one record per POST as well.
const maxBody = 16 << 20

// Receiver is an HTTP endpoint on loopback that accepts the bucket event
// notifications an S3 server POSTs to its webhook.
//
// Every POST to any path is answered 200 once its body was handed on, so
// the senders' connectivity checks and test messages succeed. Other methods
// (MinIO's liveness check is a plain TCP dial, but HEAD/GET probes are
// possible) are answered 200 with no delivery.
//
// A Receiver made by NewReceiver delivers bodies on Bodies(); one made by
// NewReceiverFunc calls its function. Either way a body is acknowledged
// only after it was delivered: if the consumer does not take it before the
// sender gives up, or the function returns an error, the sender gets a 503
// and (MinIO with a queue dir) retries it about every 3 seconds, blocking
// the events queued behind it.
type Receiver struct {
	ln     net.Listener
	srv    *http.Server
	handle func(ctx context.Context, body []byte) error
	bodies chan []byte // nil for NewReceiverFunc
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error
	served    chan struct{}
}

// NewReceiver starts a Receiver on 127.0.0.1 with a free port whose bodies
// are read from Bodies().
func NewReceiver() (*Receiver, error) {
	done := make(chan struct{})
	bodies := make(chan []byte, 64)
	r, err := newReceiver(func(ctx context.Context, body []byte) error {
		select {
		case bodies <- body:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return errors.New("receiver closed")
		}
	}, done)
	if err != nil {
		return nil, err
	}
	r.bodies = bodies
	return r, nil
}

// NewReceiverFunc starts a Receiver on 127.0.0.1 with a free port that calls
// handle for each POSTed body, from the request's goroutine (so calls may be
// concurrent). A non-nil error makes the receiver answer 503 so the sender
// retries the event later. ctx is the request's context.
func NewReceiverFunc(handle func(ctx context.Context, body []byte) error) (*Receiver, error) {
	if handle == nil {
		return nil, errors.New("new receiver: nil handler")
	}
	return newReceiver(handle, make(chan struct{}))
}

// NewReceiverAt is NewReceiverFunc listening on addr (host:port), for a
// runner whose address a separately started server was configured with.
func NewReceiverAt(addr string, handle func(ctx context.Context, body []byte) error) (*Receiver, error) {
	if handle == nil {
		return nil, errors.New("new receiver: nil handler")
	}
	return newReceiverAt(addr, handle, make(chan struct{}))
}

func newReceiver(handle func(context.Context, []byte) error, done chan struct{}) (*Receiver, error) {
	return newReceiverAt("127.0.0.1:0", handle, done)
}

func newReceiverAt(addr string, handle func(context.Context, []byte) error, done chan struct{}) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: listen: %w", err)
	}
	r := &Receiver{ln: ln, handle: handle, done: done, served: make(chan struct{})}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(r.served)
		_ = r.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return r, nil
}

// URL returns the receiver's address, http://127.0.0.1:PORT/.
func (r *Receiver) URL() string { return "http://" + r.ln.Addr().String() + "/" }

// Bodies returns the channel of received bodies for a Receiver made by
// NewReceiver, nil for one made by NewReceiverFunc. It is never closed:
// select on it together with your own cancellation.
func (r *Receiver) Bodies() <-chan []byte { return r.bodies }

// ServeHTTP implements http.Handler.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.WriteHeader(http.StatusOK)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) == 0 {
		w.WriteHeader(http.StatusOK) // a connectivity test: nothing to deliver
		return
	}
	if err := r.handle(req.Context(), body); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// Close stops accepting requests and waits for running handlers to return.
func (r *Receiver) Close() error {
	r.closeOnce.Do(func() {
		close(r.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.srv.Shutdown(ctx); err != nil {
			r.closeErr = r.srv.Close()
		}
		<-r.served
	})
	return r.closeErr
}
