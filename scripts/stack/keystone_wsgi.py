"""Serves Keystone's public WSGI application on a loopback port, one thread per request.

Debian's keystone-wsgi-public runs wsgiref single-threaded; Cinder's auth_token middleware and
the pool ask Keystone at once, so this wraps the same application in a threading server.
Usage: keystone_wsgi.py HOST PORT   (the config file comes from OS_KEYSTONE_CONFIG_FILES)
"""
import socketserver
import sys
import wsgiref.simple_server as wss

from keystone.server.wsgi import initialize_public_application


class ThreadingWSGIServer(socketserver.ThreadingMixIn, wss.WSGIServer):
    daemon_threads = True


class QuietHandler(wss.WSGIRequestHandler):
    def log_message(self, fmt, *args):  # one line per request is noise in the stack's log
        pass


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    del sys.argv[1:]  # Keystone's own option parser reads sys.argv: leave it nothing of ours
    app = initialize_public_application()
    server = wss.make_server(host, port, app, ThreadingWSGIServer, QuietHandler)
    server.serve_forever()


if __name__ == "__main__":
    main()
