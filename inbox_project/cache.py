"""Django's Redis cache with one connection pool per process.

Django keeps a cache object per async context, and under ASGI every request runs in a context of its own, so the
stock backend built a new connection pool — and opened a new Redis connection — on every request that touched the
cache (the idle-timeout setting is read on every signed-in request). The pools here are per process and shared by
every request, with one client object per pool; redis-py's pool notices a fork and starts afresh in the child.
"""

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools: dict[tuple, object] = {}
_clients: dict[int, object] = {}  # id(pool) → its redis.Redis client


class SharedPoolClient(RedisCacheClient):
    def _get_connection_pool(self, write):
        index = self._get_connection_pool_index(write)
        key = (self._servers[index], self._pool_class, repr(sorted(self._pool_options.items())))
        pool = _pools.get(key)
        if pool is None:
            pool = _pools.setdefault(
                key, self._pool_class.from_url(self._servers[index], **self._pool_options)
            )
        return pool

    def get_client(self, key=None, *, write=False):
        """One ``redis.Redis`` per pool (it is thread-safe over its pool): building one fills a table of some 250
        response callbacks, which the stock backend did on every cache call."""
        pool = self._get_connection_pool(write)
        client = _clients.get(id(pool))
        if client is None:
            client = _clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedPoolClient
