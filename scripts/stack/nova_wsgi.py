"""Serves Placement's or nova-api's WSGI application on a loopback port, one thread per request.

The same threading wsgiref server as keystone_wsgi.py (no Apache, no uwsgi): Nova's compute
services, the scheduler and the tests call Placement and nova-api at once.
Usage: nova_wsgi.py placement|nova-api HOST PORT
(config: OS_PLACEMENT_CONFIG_DIR for Placement; OS_NOVA_CONFIG_DIR, OS_NOVA_CONFIG_FILES for Nova)
"""
import sys

if sys.argv[1] == 'nova-api':
    # nova-api's code expects eventlet's patched modules, as under its own launcher: patch before
    # socketserver and threading are imported below.
    import nova.monkey_patch  # noqa: F401

import socketserver  # noqa: E402
import wsgiref.simple_server as wss  # noqa: E402


class ThreadingWSGIServer(socketserver.ThreadingMixIn, wss.WSGIServer):
    daemon_threads = True


class QuietHandler(wss.WSGIRequestHandler):
    def log_message(self, fmt, *args):  # the services log each request themselves
        pass


def load(name):
    if name == 'placement':
        from placement.wsgi import init_application
    elif name == 'nova-api':
        from nova.api.openstack.compute.wsgi import init_application
    else:
        raise SystemExit('nova_wsgi.py serves placement or nova-api, not %r' % name)
    return init_application()


def main():
    name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    del sys.argv[1:]  # nova parses sys.argv as its command line: leave it nothing of ours
    app = load(name)
    wss.make_server(host, port, app, ThreadingWSGIServer, QuietHandler).serve_forever()


if __name__ == '__main__':
    main()
