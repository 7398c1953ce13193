package k8sevents

import (
	"context"
	"errors"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	k8smetadata "k8s.io/client-go/metadata"
)

// fakeMeta is the metadata API of a cluster's objects: it answers GETs from
// its objects and counts them, and a hook can delay or fail a GET.
type fakeMeta struct {
	mu      sync.Mutex
	objects map[string]*metav1.PartialObjectMetadata // "resource/namespace/name"
	gets    map[string]int
	// rvs are the resourceVersions the GETs asked for, per object.
	rvs map[string][]string
	// stale are objects the API server's watch cache does not hold yet: a
	// GET at resourceVersion "0" does not find them.
	stale map[string]bool
	// hook, when set, runs before a GET is answered (unlocked); an error is
	// the GET's answer.
	hook func(ctx context.Context, resource, namespace, name string) error
}

var _ k8smetadata.Interface = (*fakeMeta)(nil)

func newFakeMeta() *fakeMeta {
	return &fakeMeta{
		objects: make(map[string]*metav1.PartialObjectMetadata), gets: make(map[string]int),
		rvs: make(map[string][]string), stale: make(map[string]bool),
	}
}

func metaKey(resource, namespace, name string) string { return resource + "/" + namespace + "/" + name }

// objOption changes a fixture object.
type objOption func(*metav1.PartialObjectMetadata)

func ownedBy(apiVersion, kind, name string) objOption {
	return func(o *metav1.PartialObjectMetadata) {
		yes := true
		o.OwnerReferences = append(o.OwnerReferences, metav1.OwnerReference{
			APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: &yes,
		})
	}
}

func withLabels(kv ...string) objOption {
	return func(o *metav1.PartialObjectMetadata) {
		o.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			o.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withAnnotations(kv ...string) objOption {
	return func(o *metav1.PartialObjectMetadata) {
		o.Annotations = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			o.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func withUID(uid string) objOption {
	return func(o *metav1.PartialObjectMetadata) { o.UID = types.UID(uid) }
}

// add stores an object of resource; its UID is "uid-<name>" unless an option
// says otherwise.
func (f *fakeMeta) add(resource, namespace, name string, opts ...objOption) {
	o := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID("uid-" + name)}}
	for _, opt := range opts {
		opt(o)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[metaKey(resource, namespace, name)] = o
}

// rvsOf are the resourceVersions of the GETs of one object.
func (f *fakeMeta) rvsOf(resource, namespace, name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rvs[metaKey(resource, namespace, name)]
}

// getsOf is the number of GETs of one object.
func (f *fakeMeta) getsOf(resource, namespace, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets[metaKey(resource, namespace, name)]
}

// totalGets is the number of GETs of every object.
func (f *fakeMeta) totalGets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, g := range f.gets {
		n += g
	}
	return n
}

func (f *fakeMeta) Resource(gvr schema.GroupVersionResource) k8smetadata.Getter {
	return &fakeMetaResource{f: f, gr: gvr.GroupResource()}
}

type fakeMetaResource struct {
	f         *fakeMeta
	gr        schema.GroupResource
	namespace string
}

func (r *fakeMetaResource) Namespace(ns string) k8smetadata.ResourceInterface {
	c := *r
	c.namespace = ns
	return &c
}

func (r *fakeMetaResource) Get(ctx context.Context, name string, opts metav1.GetOptions, _ ...string) (*metav1.PartialObjectMetadata, error) {
	key := metaKey(r.gr.Resource, r.namespace, name)
	r.f.mu.Lock()
	r.f.gets[key]++
	r.f.rvs[key] = append(r.f.rvs[key], opts.ResourceVersion)
	stale := r.f.stale[key] && opts.ResourceVersion == "0"
	hook := r.f.hook
	r.f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, r.gr.Resource, r.namespace, name); err != nil {
			return nil, err
		}
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	o, ok := r.f.objects[key]
	if !ok || stale {
		return nil, apierrors.NewNotFound(r.gr, name)
	}
	return o.DeepCopy(), nil
}

var errUnsupported = errors.New("not supported by fakeMeta")

func (r *fakeMetaResource) Delete(context.Context, string, metav1.DeleteOptions, ...string) error {
	return errUnsupported
}

func (r *fakeMetaResource) DeleteCollection(context.Context, metav1.DeleteOptions, metav1.ListOptions) error {
	return errUnsupported
}

func (r *fakeMetaResource) List(context.Context, metav1.ListOptions) (*metav1.PartialObjectMetadataList, error) {
	return nil, errUnsupported
}

func (r *fakeMetaResource) Watch(context.Context, metav1.ListOptions) (watch.Interface, error) {
	return nil, errUnsupported
}

func (r *fakeMetaResource) Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*metav1.PartialObjectMetadata, error) {
	return nil, errUnsupported
}
