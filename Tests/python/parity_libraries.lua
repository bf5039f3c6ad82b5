-- Scripts whose replies and errors must match redis-server's byte for byte: the cmsgpack
-- and struct libraries and the redis.* helpers' argument errors. Scripts are separated
-- by lines of four dashes.
----
return cmsgpack.pack(1, -1, 127, 128, 255, 256, 65535, 65536, -32, -33, -128, -129, -32768, -32769, 4294967296, -4294967296)
----
return cmsgpack.pack(1.5, 0.1, 1e300, -2.25, 3.0, true, false, nil)
----
return cmsgpack.pack('', 'abc', string.rep('x', 31), string.rep('x', 32), string.rep('y', 300), string.rep('z', 70000))
----
return cmsgpack.pack({1,2,3}, {}, {a=1}, {1, nil, 3}, {[1]=1, [3]=3}, {x={y={z={1,2}}}})
----
local t = {} for i=1,20 do t[i]=i end return cmsgpack.pack(t)
----
local t = {} local c = t for i=1,20 do c[1] = {} c = c[1] end return cmsgpack.pack(t)
----
return cmsgpack.pack()
----
return {cmsgpack.unpack(cmsgpack.pack(1, 'two', {3, 4, {5}}, -7, 1.5))}
----
local a, b, c = cmsgpack.unpack(cmsgpack.pack(1, 2, 3)) return {a, b, c}
----
return cjson.encode(cmsgpack.unpack(cmsgpack.pack({a=1, b={c='d'}})))
----
return {cmsgpack.unpack_one(cmsgpack.pack(10, 20, 30))}
----
local s = cmsgpack.pack(10, 20, 30) return {cmsgpack.unpack_one(s, 1)}
----
local s = cmsgpack.pack(10, 20, 30) return {cmsgpack.unpack_one(s, 2)}
----
local s = cmsgpack.pack(10, 20, 30, 40) return {cmsgpack.unpack_limit(s, 2)}
----
local s = cmsgpack.pack(10, 20, 30, 40) return {cmsgpack.unpack_limit(s, 2, 2)}
----
return cmsgpack.unpack('\205')
----
return cmsgpack.unpack('\193')
----
return {cmsgpack.unpack('')}
----
return cmsgpack.unpack_one('abc', 10)
----
return cmsgpack.unpack_one('abc', -1)
----
return cmsgpack.unpack(string.char(0xc4, 3) .. 'bin')
----
return cmsgpack.unpack(string.char(0xd3, 0xff,0xff,0xff,0xff,0xff,0xff,0xff,0xfe))
----
return tostring(cmsgpack.unpack(string.char(0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18)))
----
return tostring(cmsgpack.unpack(string.char(0xca, 0x3f, 0xc0, 0, 0)))
----
return cmsgpack.pack(function() end)
----
return cmsgpack.pack(0/0 ~= 0/0, 1/0, -1/0)
----
return struct.pack('>i2<i2', 1, 1)
----
return struct.pack('bBhHlLTiI', -1, 255, -2, 65535, -3, 4, 5, -6, 7)
----
return struct.pack('!4 b i', 1, 2)
----
return struct.pack('!b d', 1, 2.5)
----
return struct.pack('!2 b h b i8', 1, 2, 3, 4)
----
return struct.pack('i3', 65536 + 2)
----
return struct.pack('>I3', 65536 + 2)
----
return struct.pack('c5', 'abcdefg')
----
return struct.pack('c0s', 'abc', 'def')
----
return struct.pack('c5', 'ab')
----
return struct.pack('fd>f>d', 1.5, 2.25, 1.5, 2.25)
----
return struct.pack('xbx', 7)
----
return struct.pack('q', 1)
----
return struct.pack('!3i', 1)
----
return struct.pack('i33', 1)
----
return struct.pack('i99999999999', 1)
----
return {struct.unpack('>i2<i2', struct.pack('>i2<i2', 258, 258))}
----
return {struct.unpack('bBhHlLiI', struct.pack('bBhHlLiI', -1, 255, -2, 65535, -3, 4, -6, 7))}
----
return {struct.unpack('c0', struct.pack('b', 3) .. 'abcd')}
----
return {struct.unpack('bc0', struct.pack('b', 3) .. 'abcd')}
----
return {struct.unpack('s', 'hello\0world')}
----
return {struct.unpack('s', 'hello')}
----
return {struct.unpack('i', 'ab')}
----
return {struct.unpack('b', 'abc', 2)}
----
return {struct.unpack('b', 'abc', 0)}
----
return {struct.unpack('>d', struct.pack('>d', 3.25))}
----
return {tostring(struct.unpack('f', struct.pack('f', 0.5)))}
----
return {struct.unpack('!4 b i', struct.pack('!4 b i', 9, -9))}
----
return {struct.unpack('>i3', struct.pack('>i3', -5))}
----
return struct.size('bhi!4 b i d')
----
return struct.size('s')
----
return struct.size('c0')
----
return struct.size('c7 x')
----
return struct.size('!8 b d')
----
return struct.size('y')
----
return {struct.unpack('I16', string.rep('\1', 16))}
----
redis.setresp(4)
----
redis.setresp()
----
redis.log(99, 'x')
----
redis.log(1)
----
return redis.sha1hex()
----
return redis.error_reply()
----
return redis.status_reply(1,2)
----
return redis.setresp(2, 3)
----
return pcall(redis.setresp, 4)
----
redis.log('x', 'y')
----
return redis.error_reply('x', 'y')
----
return redis.status_reply({})
