import os, cv2, numpy as np, json
from mxnet import recordio
out = os.path.dirname(os.path.abspath(__file__))  # run with MXNet 1.9.1 installed: python make_fixture.py
magic = (0xced7230a).to_bytes(4, "little")
img = np.zeros((8, 8, 3), np.uint8); img[:, :4] = 200
jpg = cv2.imencode(".jpg", img)[1].tobytes()
imgs = [jpg, b"\xff\xd8\x00\x00abcd" + magic + b"efgh" + magic + magic + b"z", b"\xff\xd8" + b"q" * 7, jpg[::-1]]
labels = [4, 4, 9, 2]
w = recordio.MXIndexedRecordIO(os.path.join(out, "train.idx"), os.path.join(out, "train.rec"), "w")
n = len(imgs)
w.write_idx(0, recordio.pack(recordio.IRHeader(2, [n + 1, n + 4], 0, 0), b""))
for i, (im, lab) in enumerate(zip(imgs, labels), start=1):
    w.write_idx(i, recordio.pack(recordio.IRHeader(0, float(lab), i, 0), im))
for k, (a, b, lab) in enumerate([(1, 3, 4), (3, 4, 9), (4, 5, 2)]):
    w.write_idx(n + 1 + k, recordio.pack(recordio.IRHeader(2, [a, b], lab, 0), b""))
w.close()
json.dump({"labels": labels, "images_hex": [im.hex() for im in imgs],
           "made_with": "mxnet 1.9.1 recordio.MXIndexedRecordIO + recordio.pack (insightface layout)"},
          open(os.path.join(out, "expected.json"), "w"), indent=1)
